"""bench/compare_torch.py: one contender of bench/compare.sh, timed the same
way `h2t bench` times itself.

Runs torchvision's resnet50 or vit_b_16 (random weights, eval mode, fp32,
default memory format) on a random float batch of --batch 224x224 images
with --threads threads: one warm-up batch, then batches until --seconds have
passed (at least 2). The last line of stdout has the form of h2t bench's:
  bench: <engine> <arch>, batch B, T threads, N batches in X s (best batch Y img/s): Z img/s
where Z is the mean over the timed batches. Engines:
  torch  model(x) under torch.inference_mode(), torch.set_num_threads(T)
  ort    ONNX Runtime on a model made by --export (intra_op T, inter_op 1,
         sequential execution, all graph optimizations)
Other modes: --export FILE writes the torchvision model as ONNX (opset 17);
--flops prints the model's flops per 224x224 image (2 per multiply-add of
its convolutions, dense layers and attention products, counted by forward
hooks on one image); --matmul N times ONNX Runtime's MatMul of two N x N
fp32 matrices (the best of runs over --seconds; needs onnx to build the
graph) and prints "matmul N: X GFLOP/s"; --versions prints the versions of
what this python has.
Works with Debian's /usr/bin/python3 (torch 1.13) and a current PyPI torch.
Set OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / OPENBLAS_CORETYPE in the
environment before starting it (bench/compare.sh does)."""
import argparse
import sys
import time


def versions():
    out = [f'python {sys.version.split()[0]}']
    for name in ('torch', 'torchvision', 'numpy', 'onnx', 'onnxruntime'):
        try:
            mod = __import__(name)
            out.append(f'{name} {mod.__version__}')
        except Exception:  # noqa: BLE001  absent or broken: say so
            out.append(f'{name} absent')
    print(', '.join(out))


def make_model(arch):
    import torch
    import torchvision
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None)
    return model.eval()


def flops_per_image(arch):
    """2 x the multiply-adds of one 224x224 image through the model."""
    import torch
    model = make_model(arch)
    macs = []

    def conv(m, inp, out):
        macs.append(out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])

    def dense(m, inp, out):
        macs.append(out.numel() * m.in_features)

    def attention(m, inp, out):  # in-projection, q k^T, P v, out-projection (its Linear runs inside)
        y = out[0]  # [1, T, C] (batch first) or [T, 1, C]; inp may be empty (called with keywords)
        T = y.shape[1] if m.batch_first else y.shape[0]
        C = m.embed_dim
        macs.append(T * C * 3 * C + 2 * T * T * C + T * C * C)

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(conv)
        elif isinstance(m, torch.nn.MultiheadAttention):
            m.register_forward_hook(attention)
        elif isinstance(m, torch.nn.Linear):
            m.register_forward_hook(dense)
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    return 2 * sum(macs)


def ort_matmul(n, threads, seconds):
    """GFLOP/s of ONNX Runtime's MatMul, n x n times n x n, fp32: the best run."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper
    io = [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in 'ABC']
    graph = helper.make_graph([helper.make_node('MatMul', ['A', 'B'], ['C'])], 'matmul', io[:2], io[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=['CPUExecutionProvider'])
    rng = np.random.default_rng(1)
    feed = {k: rng.random((n, n), dtype=np.float32) for k in 'AB'}
    sess.run(None, feed)
    best, t_end = float('inf'), time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        sess.run(None, feed)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best / 1e9


def time_batches(run, batch, seconds):
    """Warm-up batch, then batches until `seconds` (at least 2): (runs, total, best, cpu)."""
    run()
    runs, total, best = 0, 0.0, float('inf')
    c0 = time.process_time()
    while runs < 2 or total < seconds:
        t = time.perf_counter()
        run()
        t = time.perf_counter() - t
        runs, total, best = runs + 1, total + t, min(best, t)
        print(f'{runs}: {t:.3f} s, {batch / t:.2f} img/s', file=sys.stderr)
    return runs, total, best, (time.process_time() - c0) / total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--engine', choices=('torch', 'ort'), default='torch')
    ap.add_argument('--arch', choices=('resnet50', 'vit_b_16'), default='resnet50')
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--seconds', type=float, default=10.0)
    ap.add_argument('--onnx', help='ONNX model file (engine ort)')
    ap.add_argument('--export', metavar='FILE', help='write the model as ONNX to FILE and exit')
    ap.add_argument('--flops', action='store_true', help="print the model's flops per image and exit")
    ap.add_argument('--matmul', type=int, metavar='N', help="time ONNX Runtime's N x N MatMul and exit")
    ap.add_argument('--versions', action='store_true', help='print versions and exit')
    args = ap.parse_args()
    if args.versions:
        versions()
        return
    B, T = args.batch, args.threads
    if args.flops:
        print(f'flops per image: {flops_per_image(args.arch)}')
        return
    if args.matmul:
        print(f'matmul {args.matmul}: {ort_matmul(args.matmul, T, args.seconds):.1f} GFLOP/s')
        return

    if args.export:
        import torch
        model = make_model(args.arch)
        x = torch.randn(B, 3, 224, 224)
        kw = {}
        import inspect
        params = inspect.signature(torch.onnx.export).parameters
        if 'dynamo' in params:  # torch >= 2.5: keep the TorchScript exporter (the default up to 2.8)
            kw['dynamo'] = False
        if 'external_data' in params:  # one self-contained file
            kw['external_data'] = False
        # grad stays enabled: nn.MultiheadAttention's inference fast path
        # (aten::_native_multi_head_attention) has no ONNX export
        if hasattr(torch.backends, 'mha'):
            torch.backends.mha.set_fastpath_enabled(False)
        torch.onnx.export(model, (x,), args.export, opset_version=17, input_names=['x'],
                          output_names=['logits'], do_constant_folding=True, **kw)
        print(f'exported {args.arch} -> {args.export} (torch {torch.__version__}, opset 17)')
        return

    if args.engine == 'torch':
        import torch
        torch.set_num_threads(T)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        model = make_model(args.arch)
        x = torch.randn(B, 3, 224, 224, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            runs, total, best, cpu = time_batches(lambda: model(x), B, args.seconds)
        name = f'torch {torch.__version__} ({torch.get_num_threads()} threads)'
    else:
        import numpy as np
        import onnxruntime as ort
        if not args.onnx:
            sys.exit('compare_torch.py: --engine ort needs --onnx FILE (made by --export)')
        so = ort.SessionOptions()
        so.intra_op_num_threads = T
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(args.onnx, so, providers=['CPUExecutionProvider'])
        x = np.random.default_rng(1).standard_normal((B, 3, 224, 224), dtype=np.float32)
        iname = sess.get_inputs()[0].name
        runs, total, best, cpu = time_batches(lambda: sess.run(None, {iname: x}), B, args.seconds)
        name = f'onnxruntime {ort.__version__}'
    print(f'{name}: {cpu:.2f} cores busy while timed')
    print(f'bench: {args.engine} {args.arch}, batch {B}, {T} thread{"s" if T != 1 else ""}, {runs} batches in '
          f'{total:.1f} s (best batch {B / best:.2f} img/s): {runs * B / total:.2f} img/s')


if __name__ == '__main__':
    main()
