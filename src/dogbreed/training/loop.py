"""Train and evaluate loops with float metrics over the *whole* epoch.

The loops are agnostic to what `model` is: the full network on images, or just the head on
cached backbone features. Instrumentation and mixed precision are always called; when off
they are no-ops.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

from dogbreed.training import metrics
from dogbreed.training.distributed import DistInfo, all_reduce_sum
from dogbreed.training.instrumentation import NullInstrumentation


@dataclass
class EpochResult:
    loss: float
    acc: float
    n: int
    seconds: float
    top5: float = float("nan")


def train_one_epoch(model, loader, loss_fn, optimizer, precision, scaler, instr,
                    dist: DistInfo = DistInfo()) -> EpochResult:
    model.train()
    instr.set_mode("train")
    loss_sum = correct = n = 0.0
    start = t_ready = time.perf_counter()
    for x, y in loader:
        t_data = time.perf_counter()
        if len(y) == 0:
            continue
        x, y = precision.prepare_input(x), y.to(precision.device)
        with precision.autocast():
            logits = model(x)
            loss = loss_fn(logits.float(), y)
        if loss.requires_grad:  # False when every parameter is frozen (--freeze all)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        batch = len(y)
        loss_sum += loss.item() * batch
        correct += (logits.argmax(1) == y).sum().item()
        n += batch
        t_done = time.perf_counter()
        instr.record_step(data_wait_s=t_data - t_ready, step_s=t_done - t_data, batch_size=batch)
        t_ready = t_done
    loss_sum, correct, n = all_reduce_sum([loss_sum, correct, n], dist)
    return EpochResult(loss_sum / max(n, 1), correct / max(n, 1), int(n), time.perf_counter() - start)


def evaluate(model, loader, loss_fn, precision, instr, dist: DistInfo = DistInfo(), num_classes: int | None = None):
    """Loss, top-1, top-5 over the loader; with `num_classes`, also a confusion matrix."""
    import torch

    model.eval()
    instr.set_mode("eval")
    loss_sum = correct = correct5 = n = 0.0
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long) if num_classes else None
    start = time.perf_counter()
    with torch.inference_mode():
        for x, y in loader:
            if len(y) == 0:
                continue
            x, y = precision.prepare_input(x), y.to(precision.device)
            with precision.autocast():
                logits = model(x).float()
            loss_sum += loss_fn(logits, y).item() * len(y)
            k = min(5, logits.shape[1])
            topk = logits.topk(k, dim=1).indices
            correct += (topk[:, 0] == y).sum().item()
            correct5 += (topk == y[:, None]).any(1).sum().item()
            n += len(y)
            if confusion is not None:
                idx = y.cpu() * num_classes + topk[:, 0].cpu()
                confusion += torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)
    loss_sum, correct, correct5, n = all_reduce_sum([loss_sum, correct, correct5, n], dist)
    if confusion is not None and dist.enabled:
        import torch.distributed as tdist

        tdist.all_reduce(confusion)
    result = EpochResult(loss_sum / max(n, 1), correct / max(n, 1), int(n), time.perf_counter() - start,
                         top5=correct5 / max(n, 1))
    return (result, confusion) if num_classes else result


@dataclass
class FitState:
    """Everything needed to resume: stored in checkpoints as primitives and tensors."""

    epoch: int = 0  # epochs completed
    best_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)


def fit(
    model,
    train_loader,
    valid_loader,
    *,
    loss_fn,
    optimizer,
    precision,
    epochs: int,
    patience: int = 0,
    instr=None,
    dist: DistInfo = DistInfo(),
    state: FitState | None = None,
    best_state_dict: dict | None = None,
    on_epoch_end: Callable[[FitState, dict, dict | None], None] | None = None,
    train_sampler=None,
    log: Callable[[str], None] = print,
) -> tuple[FitState, dict | None]:
    """Train for `epochs`, validating after each; early stopping after `patience` epochs
    without improvement (0 = off). Returns the state and the best weights seen."""
    instr = instr or NullInstrumentation()
    state = state or FitState()
    scaler = precision.grad_scaler()
    net = getattr(model, "module", model)
    for epoch in range(state.epoch, epochs):
        if train_sampler is not None:
            train_sampler.set_epoch(epoch)
        tr = train_one_epoch(model, train_loader, loss_fn, optimizer, precision, scaler, instr, dist)
        va = evaluate(model, valid_loader, loss_fn, precision, instr, dist)
        row = {"epoch": epoch + 1, "train_loss": tr.loss, "train_acc": tr.acc, "valid_loss": va.loss,
               "valid_acc": va.acc, "seconds": tr.seconds + va.seconds,
               "images_per_sec": tr.n / tr.seconds if tr.seconds else 0.0}
        state.history.append(row)
        state.epoch = epoch + 1
        improved = va.loss < state.best_loss
        if improved:
            state.best_loss, state.best_epoch, state.bad_epochs = va.loss, epoch + 1, 0
            best_state_dict = copy.deepcopy({k: v.detach().cpu() for k, v in net.state_dict().items()})
        else:
            state.bad_epochs += 1
        if dist.is_primary:
            log(f"epoch {epoch + 1}/{epochs}: train_loss={tr.loss:.4f} train_acc={tr.acc:.4f} "
                f"valid_loss={va.loss:.4f} valid_acc={va.acc:.4f} ({row['images_per_sec']:.1f} img/s)")
            for name in ("epoch", "train_loss", "train_acc", "valid_loss", "valid_acc", "images_per_sec"):
                metrics.emit(name, row[name])
        if on_epoch_end is not None:
            on_epoch_end(state, row, best_state_dict)
        if patience and state.bad_epochs >= patience:
            if dist.is_primary:
                log(f"early stopping: valid_loss has not improved for {patience} epoch(s) "
                    f"(best {state.best_loss:.4f} at epoch {state.best_epoch})")
            break
    return state, best_state_dict
