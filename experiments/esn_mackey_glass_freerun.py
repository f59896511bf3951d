"""Free-running Mackey-Glass forecast: a 300-unit ESN, trained one step ahead, then fed its own predictions.

`run_trial` on `config` fits and scores the one-step readout; `python experiments/esn_mackey_glass_freerun.py`
(or `free_run_nrmse(config)`) then teacher-forces the start of the test series and lets the network run alone
for 84 steps, printing NRMSE84 = RMSE over those steps / std of the series (Jaeger & Haas, 2004).
"""

from pathlib import Path

import torch

from rnnlab.config import Config
from rnnlab.experiment import extend

FREE_STEPS = 84
TEACHER_STEPS = 200  # test steps fed to the reservoir before it runs alone

# experiments/esn_mackey_glass.py with a larger reservoir and a lighter ridge
config = extend(Path(__file__).with_name("esn_mackey_glass.py"), {"model.esn.units": 300, "model.esn.ridge": 1e-8})


def free_run_nrmse(cfg: Config = config, free_steps: int = FREE_STEPS, teacher_steps: int = TEACHER_STEPS) -> float:
    """Fit the readout on the train split, free-run `free_steps` after `teacher_steps` of the test split."""
    from rnnlab.models import build_model
    from rnnlab.models.esn import generate
    from rnnlab.tasks import load_task_data

    torch.manual_seed(cfg.seed)  # the reservoir is drawn from the trial seed, as in run_trial
    data = load_task_data(cfg.data, cfg.seed)
    model = build_model(cfg, data.input_size, data.vocab_size, data.output_size, data.task)
    train = data.train
    model.fit_closed_form([(train.inputs, train.lengths, train.targets)], ridge=cfg.model.esn.ridge)
    series = data.test.inputs[:1]
    predicted = generate(model.encoder, series[:, :teacher_steps], free_steps, model.head)
    truth = series[:, teacher_steps : teacher_steps + free_steps]
    rmse = torch.sqrt(((predicted - truth) ** 2).mean())
    return float(rmse / data.train.inputs[0, : int(data.train.lengths[0])].std())


if __name__ == "__main__":
    print(f"NRMSE{FREE_STEPS} = {free_run_nrmse():.2e}")
