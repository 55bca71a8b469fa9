"""`selfsup.pretrain(callbacks=...)`: a user's own Lightning callbacks run inside the run."""

import lightning as L

import selfsup


class CountSteps(L.Callback):
    def __init__(self):
        self.steps = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append(trainer.global_step)


def test_a_users_callback_sees_every_step_and_leaves_the_run_alone(tmp_path):
    counter = CountSteps()
    run = selfsup.pretrain("simclr", "digits", epochs=1, batch_size=256, precision="32",
                           run_dir=str(tmp_path / "run"), evaluate_after=False,
                           callbacks=[counter])
    assert run.steps == 1797 // 256
    assert counter.steps == list(range(1, run.steps + 1))
    assert selfsup.load(tmp_path / "run").dim > 0  # the run's own export is untouched
