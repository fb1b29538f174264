"""One-off (README, retrieval): KD over the whole catalogue.

The in-batch term compares the two models' softmax over the B items of a
batch (mostly popular ones, as positives are drawn by popularity). Here
each user of a batch is compared over all 1,682 items instead: the
teacher's catalogue embeddings are computed once (it is frozen), the
student's item tower runs on the catalogue every step. Same seeds,
teachers, early stopping and metrics as `tfkd bench --quality --task
retrieval --ensemble-size 2 --patience P`, so the rows sit beside it.

    .venv/bin/python tools/catalogue_kd_trial.py SEED PATIENCE ALPHA:T ...
"""
import sys
import time

import keras
import numpy as np
from keras import ops

from tfkd import datasets
from tfkd import model_utils
from tfkd import retrieval_losses
from tfkd import retrieval_quality as rq
from tfkd.export import retrieval_inputs
from tfkd.retrieval_distiller import RetrievalDistiller


class CatalogueDistiller(RetrievalDistiller):
    """`in_batch` with the batch's items replaced by the whole catalogue."""

    def set_catalogue(self, items):
        table = retrieval_inputs.candidate_table(
            items, self.student.item_model, "item_id", 1)
        teacher_table = retrieval_inputs.candidate_table(
            items, self.teacher.item_model, "item_id", 1)
        inputs = model_utils.select_inputs(
            self.teacher.item_model, teacher_table, "teacher")
        self.teacher_items = ops.convert_to_tensor(np.asarray(
            self.teacher.item_model.predict(inputs, batch_size=4096,
                                            verbose=0), np.float32))
        # A list, not a dict: Keras tracks a dict attribute and sorts its
        # keys, which no longer match the tower's input order.
        self.student_inputs = list(model_utils.select_inputs(
            self.student.item_model,
            {n: ops.convert_to_tensor(v) for n, v in table.items()},
            "student").items())

    def _in_batch_term(self, features, student_embeddings):
        teacher_users = self.teacher.user_model(model_utils.select_inputs(
            self.teacher.user_model, features, "teacher"), training=False)
        teacher_logits = ops.stop_gradient(
            ops.matmul(teacher_users, ops.transpose(self.teacher_items))
            / self.teacher.temperature)
        users, _ = student_embeddings
        items = self.student.item_model(dict(self.student_inputs),
                                        training=True)
        student_logits = (ops.matmul(users, ops.transpose(items))
                          / self.student.temperature)
        return retrieval_losses.in_batch_distillation_loss(
            teacher_logits, student_logits, self._temperature)


def main():
    seed, patience = int(sys.argv[1]), int(sys.argv[2])
    pairs = [tuple(float(v) for v in a.split(":")) for a in sys.argv[3:]]
    settings = rq.RetrievalSettings(ensemble_size=2, patience=patience)
    data = datasets.movielens_100k(task="retrieval", seed=rq.SPLIT_SEED)
    members = [rq._trained(data, rq.TEACHER, seed + i * rq.MEMBER_STRIDE,
                           settings, "teacher")[0]
               for i in range(settings.ensemble_size)]
    ensemble = rq.ensemble_two_tower(members)
    print(f"seed {seed} ensemble {rq._evaluate(ensemble, data)}", flush=True)
    for alpha, temperature in pairs:
        started = time.perf_counter()
        student = rq._two_tower(data, rq.STUDENT, seed, settings)
        distiller = CatalogueDistiller(ensemble, student, seed=seed)
        distiller.compile(optimizer=keras.optimizers.Adam(1e-3),
                          alpha=alpha, temperature=temperature)
        distiller.set_catalogue(data.items)
        row = rq._fit(distiller, student, data, settings)
        row.update(rq._evaluate(student, data))
        print(f"seed {seed} catalogue alpha {alpha} T {temperature}: "
              f"{row} {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
