"""`lfn-ros import-weights FILE --out lfn.pt`: a published LiteFlowNet file (sniklaus's
network-default/-sintel/-kitti.pytorch, ptlflow's liteflownet-*.ckpt, mmflow's liteflownet_*.pth;
lfn_ros.model.published) converted once into lfn_ros's
safe checkpoint format (``torch.load(weights_only=True)``), its card saying where the weights came
from, the terms they were published under, and that lfn_ros did not train them. A port that
computes something the paper does not (ptlflow, mmflow) keeps its computation: the checkpoint records its
variant (lfn_ros.model.variant), so the converted file runs exactly as the original.

Not needed to run them: the node's ``weights`` parameter and every ``--weights`` take the
published file as it is. The converted file is half the size (fp16), loads without the layout
detection, and carries its provenance with it.
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("import-weights", help="convert the paper's published weights into an lfn_ros checkpoint")
    p.add_argument("file", help="a published LiteFlowNet weights file (sniklaus/pytorch-liteflownet, ptlflow or mmflow layout)")
    p.add_argument("--out", required=True, help="lfn_ros checkpoint to write (e.g. lfn_default.pt)")
    p.add_argument("--fp32", action="store_true", help="keep fp32 parameters (default: fp16, half the size; "
                   "the engine computes in fp32 or bf16 either way)")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from .model.weights import FORMAT, load_model, save_checkpoint

    model, card = load_model(args.file)  # a clear WeightsError for anything it cannot read
    raw = torch.load(args.file, map_location="cpu", weights_only=True)
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        print(f"error: {args.file} is already an lfn_ros checkpoint; nothing to import", file=sys.stderr)
        return 2
    keep = {k: card[k] for k in ("name", "trained", "trained_by", "imported", "licence", "recommended_finest_level",
                                 "variant") if k in card}
    path = save_checkpoint(args.out, model, card=keep, half=not args.fp32)
    source = card["imported"]
    print(f"{args.file}: {source['layout']} layout ({source['repository']}), sha256 {source['sha256'][:12]}...\n"
          f"wrote {path} ({Path(path).stat().st_size / 1e6:.1f} MB, {'fp32' if args.fp32 else 'fp16'}); "
          f"licence: {card['licence']}" + (f"\nruns in {card['variant']}" if "variant" in card else ""))
    return 0
