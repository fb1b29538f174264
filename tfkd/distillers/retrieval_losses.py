"""The loss math of retrieval distillation, in `keras.ops`.

Two soft-target terms for two-tower models (`tfkd.RetrievalDistiller`):

- `in_batch_distillation_loss`: the teacher's and the student's (B, B)
  user x item logit matrices over a batch, compared row by row with a
  softmax KL at temperature `T` (Hinton et al. 2015, applied to in-batch
  retrieval scores).
- `relaxed_ranking_loss`: the relaxed ListMLE of DE-RRD (Kang et al. 2020):
  the teacher's top-K items of a user must keep the teacher's order and
  stay above sampled other items, whose internal order is not taught.

Both take logits (already divided by the towers' temperatures) and
return a scalar in float32.
"""

from typing import Any

from keras import ops

# Added to masked logits so that exp() of them is 0 in float32 while the
# arithmetic stays finite (an -inf would turn 0 * inf into NaN in the
# gradient of logsumexp).
MASK_LOGIT = -1e9


def in_batch_distillation_loss(
    teacher_logits: Any, student_logits: Any, temperature: Any
) -> Any:
    """Row-wise softmax KL between two `(B, B)` logit matrices, times T^2.

    ```
    p_t[b] = softmax(teacher_logits[b] / T)
    loss   = T**2 * mean_b KL(p_t[b] || softmax(student_logits[b] / T))
    ```

    Args:
        teacher_logits: `(B, B)` tensor. Row b holds the teacher's logits
            of user b against every item of the batch.
        student_logits: `(B, B)` tensor. The student's, in the same order.
        temperature: float or scalar tensor `T > 0`.

    Returns:
        Scalar float32 tensor, >= 0 and 0 when both matrices are equal.

    Example:

    ```python
    t = keras.ops.convert_to_tensor([[2.0, 0.0], [0.0, 2.0]])
    in_batch_distillation_loss(t, t, 2.0)  # 0.0
    ```
    """
    temperature = ops.cast(temperature, "float32")
    teacher = ops.cast(teacher_logits, "float32") / temperature
    student = ops.cast(student_logits, "float32") / temperature
    teacher_log_p = ops.log_softmax(teacher, axis=-1)
    student_log_p = ops.log_softmax(student, axis=-1)
    kl = ops.sum(
        ops.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1
    )
    return ops.mean(kl) * temperature**2


def relaxed_ranking_loss(
    ranked_logits: Any, negative_logits: Any, row_weights: Any = None
) -> Any:
    """Relaxed ListMLE: teacher's top-K in order, above sampled items.

    For one user with logits `s_1..s_K` of the teacher's top-K items (in
    the teacher's order, best first) and `n_1..n_N` of sampled other items:

    ```
    loss = -sum_k log( exp(s_k) /
                       (sum_{l=k..K} exp(s_l) + sum_j exp(n_j)) )
    ```

    averaged over the rows of the batch (weighted by `row_weights`). The
    sum over `k`, not a mean, follows DE-RRD: the term grows with `K`.

    Args:
        ranked_logits: `(B, K)` tensor. Student logits of each row's
            teacher top-K items, best first.
        negative_logits: `(B, N)` tensor. Student logits of sampled items;
            entries at `MASK_LOGIT` or below count as absent.
        row_weights: `(B,)` tensor or None. Per-row weight, e.g. 0 for a
            user without a teacher ranking; the result is
            `sum_b w_b loss_b / max(sum_b w_b, 1)`. Defaults to `None`
            (all 1).

    Returns:
        Scalar float32 tensor, > 0.

    Example:

    ```python
    ranked = keras.ops.convert_to_tensor([[3.0, 1.0]])
    negatives = keras.ops.convert_to_tensor([[0.0]])
    relaxed_ranking_loss(ranked, negatives)
    # -(log(e^3/(e^3+e^1+1)) + log(e^1/(e^1+1))) = 0.483
    ```
    """
    ranked = ops.cast(ranked_logits, "float32")
    negatives = ops.cast(negative_logits, "float32")
    k = ops.shape(ranked)[1]
    positions = ops.arange(k)
    # suffix[k, l] is true where item l is still in the list at step k.
    suffix = ops.expand_dims(positions, 0) >= ops.expand_dims(positions, 1)
    remaining = ops.where(
        ops.expand_dims(suffix, 0),
        ops.expand_dims(ranked, 1),
        MASK_LOGIT,
    )
    negatives = ops.broadcast_to(
        ops.expand_dims(negatives, 1),
        (ops.shape(ranked)[0], k, ops.shape(negatives)[1]),
    )
    candidates = ops.concatenate([remaining, negatives], axis=-1)
    log_likelihood = ranked - ops.logsumexp(candidates, axis=-1)
    losses = -ops.sum(log_likelihood, axis=-1)
    if row_weights is None:
        return ops.mean(losses)
    row_weights = ops.cast(row_weights, "float32")
    total = ops.sum(row_weights)
    return ops.sum(losses * row_weights) / ops.maximum(total, 1.0)


def masked_negative_logits(
    negative_logits: Any, negative_ids: Any, ranked_ids: Any
) -> Any:
    """Masks sampled items that are also among a row's ranked items.

    Args:
        negative_logits: `(B, N)` tensor of sampled items' logits.
        negative_ids: `(N,)` int tensor. The sampled item ids (shared by
            the rows).
        ranked_ids: `(B, K)` int tensor. Each row's teacher top-K ids.

    Returns:
        `negative_logits` with `MASK_LOGIT` where the sampled item is one
        of the row's ranked items (it is to be ranked, not pushed down).
    """
    collides = ops.any(
        ops.expand_dims(ranked_ids, 1)
        == ops.reshape(negative_ids, (1, -1, 1)),
        axis=-1,
    )
    return ops.where(collides, MASK_LOGIT, negative_logits)

