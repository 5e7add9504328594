"""`python3 cache_fill_worker.py OUT GO`: builds fused models on cuda:0, writes OUT.ready, waits
for the file GO, then runs them (compiling their kernels through $FUSEBLOCK_CACHE_DIR) in eval and
train mode, float32 and bfloat16 where the GPU has it, and saves the outputs to OUT. Run by
test_distributed.py's cache test, several at once."""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import distributed_models as dm  # noqa: E402


def main(out: str, go: str) -> None:
    device = torch.device("cuda", 0)
    dm.deterministic(device)
    dtypes = [torch.float32] + ([torch.bfloat16] if torch.cuda.is_bf16_supported() else [])
    models = {name: dm.fused(make())[0].to(device) for name, make in (("unet", dm.unet), ("segresnet", dm.segresnet))}
    open(out + ".ready", "w").close()
    deadline = time.monotonic() + 300
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit(f"{go} did not appear within 300 s")
        time.sleep(0.01)
    results = {}
    with torch.no_grad():
        for dtype in dtypes:  # float32 first: .to() converts the modules in place
            for name, model in models.items():
                model.to(dtype)
                x = dm.sample_batch(31, 2).to(device, dtype)
                results[f"{name} {dtype} eval"] = model.eval()(x).cpu()
                torch.manual_seed(7)
                results[f"{name} {dtype} train"] = model.train()(x).cpu()
    torch.save(results, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
