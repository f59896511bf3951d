"""`rnnlab dashboard SEARCH_DIR`: the search's Optuna journal, live, in optuna-dashboard (a default dependency)."""

from __future__ import annotations

from pathlib import Path

from rnnlab import search_folder as sf


def journal_path(folder: str | Path) -> Path:
    return Path(sf.SearchSpec.load(folder).folder, sf.JOURNAL_FILE)


def check_listen(host: str, port: int) -> None:
    """The dashboard's server can bind host:port (as it will: address reuse on); else a ConfigError naming the flag."""
    import errno
    import socket

    from rnnlab.config import ConfigError

    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise ConfigError("--host", f"{host!r} is no address ({err.strerror}); e.g. 127.0.0.1 or 0.0.0.0") from None
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise ConfigError("--port", f"{port} is in use on {host}; choose another --port") from None
            raise ConfigError("--host", f"cannot listen on {host}:{port} ({err.strerror}); e.g. 127.0.0.1") from None


def serve_dashboard(folder: str | Path, host: str = "127.0.0.1", port: int = 8080) -> None:
    """optuna-dashboard on the search's journal (blocks until interrupted): `optuna-dashboard <journal>`, found."""
    try:
        from optuna_dashboard import run_server
    except ImportError:
        from rnnlab.config import ConfigError

        raise ConfigError(
            "dashboard", "needs optuna-dashboard (a default dependency): pip install optuna-dashboard"
        ) from None
    from rnnlab.search_folder import load_study, open_study_storage

    # the study read once first: a search without one yet was served as an empty dashboard, its optuna.journal
    # created by the reader; one corrupted inside failed in the server with a JSONDecodeError traceback
    load_study(sf.SearchSpec.load(folder).folder)
    check_listen(host, port)
    print(f"optuna-dashboard on {journal_path(folder)}: http://{host}:{port}/dashboard/  (Ctrl-C stops it)")
    run_server(open_study_storage(folder), host=host, port=port)
