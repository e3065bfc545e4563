"""PyTorch side of the MLP training benchmark (services/strategy/benches/mlp_training.rs) and of
scripts/gpu-check.sh (with --device cuda: data and network on the GPU, timed to a synchronize).

Trains the same network as ktrdr's training (per hidden size Linear -> ReLU -> Dropout, then
Linear(..., 3) logits; cross-entropy; Adam) the way the original ktrdr trained it: every epoch
shuffles the training rows, runs the mini-batches, then evaluates the validation split; the test
split is evaluated once at the end. The rows are random features in [0, 1) with labels from a
fixed random linear map of the centred features. Prints one JSON object: samples/s (training rows x epochs / wall time), the torch
version and the threads used.
"""

import argparse
import json
import time

import torch
from torch import nn


def network(inputs: int, hidden: list[int], dropout: float) -> nn.Module:
    layers: list[nn.Module] = []
    width = inputs
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
        width = size
    layers.append(nn.Linear(width, 3))
    return nn.Sequential(*layers)


def rows(n: int, inputs: int, mapping: torch.Tensor, gen: torch.Generator):
    x = torch.rand(n, inputs, generator=gen)
    y = ((x - 0.5) @ mapping).argmax(dim=1)
    return x, y


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[float, float]:
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(y), batch):
            logits = model(x[start : start + batch])
            target = y[start : start + batch]
            loss += nn.functional.cross_entropy(logits, target, reduction="sum").item()
            correct += (logits.argmax(dim=1) == target).sum().item()
    return loss / len(y), correct / len(y)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, required=True)
    parser.add_argument("--hidden", required=True, help="sizes separated by commas, e.g. 32,16")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--train-rows", type=int, required=True)
    parser.add_argument("--eval-rows", type=int, required=True, help="rows of validation and of test")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--learning-rate", type=float, default=0.001)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    args = parser.parse_args()
    device = torch.device(args.device)

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(1)
    mapping = torch.randn(args.inputs, 3, generator=gen)
    x_train, y_train = rows(args.train_rows, args.inputs, mapping, gen)
    x_val, y_val = rows(args.eval_rows, args.inputs, mapping, gen)
    x_test, y_test = rows(args.eval_rows, args.inputs, mapping, gen)
    x_train, y_train, x_val, y_val, x_test, y_test = (
        t.to(device) for t in (x_train, y_train, x_val, y_val, x_test, y_test)
    )
    torch.manual_seed(1)
    model = network(args.inputs, [int(h) for h in args.hidden.split(",")], args.dropout).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    loss_fn = nn.CrossEntropyLoss()

    started = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(args.train_rows, generator=gen).to(device)
        for start in range(0, args.train_rows, args.batch):
            index = order[start : start + args.batch]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[index]), y_train[index])
            loss.backward()
            optimizer.step()
        evaluate(model, x_val, y_val, args.batch)
    _, test_accuracy = evaluate(model, x_test, y_test, args.batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started

    print(
        json.dumps(
            {
                "samples_per_second": args.train_rows * args.epochs / seconds,
                "seconds": seconds,
                "test_accuracy": test_accuracy,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "device": str(device),
            }
        )
    )


if __name__ == "__main__":
    main()
