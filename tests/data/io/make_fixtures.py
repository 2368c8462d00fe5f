#!/usr/bin/env python3
"""Regenerate the fixtures of src/io (numpy and Polygraphy files) in this directory.

Needs numpy, onnx, polygraphy, onnxruntime and ml_dtypes (for the bfloat16 array):
    pip install numpy onnx polygraphy onnxruntime ml_dtypes
    python3 tests/data/io/make_fixtures.py

Made with numpy 2.4.6, polygraphy 0.53.6, onnxruntime 1.31.1, ml_dtypes 0.6.0. The Rust tests check exact values, so
keep the values below in sync with src/io/npy.rs and src/io/polygraphy.rs.
"""

import json
import os
import struct
import subprocess
from collections import OrderedDict

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto, helper
from polygraphy.comparator import IterationResult, RunResults
from polygraphy.json import save_json

HERE = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(HERE, name)


def numpy_dtypes():
    base = np.arange(6).reshape(2, 3) - 2  # [-2 .. 3]
    arrays = OrderedDict()
    for name in ["float32", "float16", "float64", "int8", "int16", "int32", "int64"]:
        arrays[name] = base.astype(name)
    for name in ["uint8", "uint16", "uint32", "uint64"]:
        a = np.arange(6).reshape(2, 3).astype(name)
        a[1, 2] = np.iinfo(name).max
        arrays[name] = a
    arrays["bool"] = (np.arange(6) % 3 == 0).reshape(2, 3)
    arrays["bfloat16"] = base.astype(ml_dtypes.bfloat16)  # saved with descr '<V2'
    arrays["scalar"] = np.array(7.5, dtype=np.float32)
    arrays["empty"] = np.zeros((0, 3), dtype=np.float32)
    arrays["/model/conv/Conv_output_0:0"] = np.array([0.5, -0.25], dtype=np.float32)
    np.savez(path("numpy_dtypes.npz"), **arrays)


def numpy_layouts():
    base = np.arange(24).reshape(2, 3, 4)
    np.savez(
        path("numpy_layouts.npz"),
        fortran_f32=np.asfortranarray(base.astype("<f4")),
        big_i32=base.astype(">i4"),
        big_fortran_f64=np.asfortranarray(base.astype(">f8")),
        big_u16=base.astype(">u2"),
    )


def numpy_versions():
    with open(path("version2.npy"), "wb") as f:
        np.lib.format.write_array(f, np.array([-1, 0, 1], dtype="<i2"), version=(2, 0))
    with open(path("version3.npy"), "wb") as f:
        np.lib.format.write_array(f, np.array([[0.25, -8.0]], dtype="<f8"), version=(3, 0))


def polygraphy_inputs():
    # What `polygraphy run --save-inputs inputs.json` writes: a list of feed_dicts.
    iterations = []
    for it in range(2):
        feed = OrderedDict()
        feed["input_ids"] = (np.arange(4, dtype=np.int64) + 100 * it).reshape(1, 4)
        feed["pixel/values:0"] = (np.arange(4, dtype=np.float32) / 4 - it).reshape(1, 2, 2)
        feed["mask"] = np.array([True, False, it == 1, True])
        feed["scale"] = np.array(0.5 + it, dtype=np.float16)
        iterations.append(feed)
    save_json(iterations, path("polygraphy_inputs.json"))


def polygraphy_outputs():
    # What `polygraphy run --save-outputs outputs.json` writes: RunResults. Output order is
    # deliberately not alphabetical (it is the runner's order and must be kept).
    results = RunResults()
    for r, runner in enumerate(["onnxrt-runner-N0-01/02/25-10:00:00", "trt-runner-N0-01/02/25-10:00:00"]):
        iterations = []
        for it in range(2):
            outputs = OrderedDict()
            outputs["z_logits"] = (np.arange(6, dtype=np.float16).reshape(2, 3) / 8 + it + r / 1024)
            outputs["argmax"] = np.array([2, -(1 << 40) - it], dtype=np.int64)
            outputs["is_valid"] = np.array([True, it == 0])
            outputs["a_probs"] = np.array([[0.125 * (it + 1), 1 - r / 4]], dtype=np.float32)
            runtime = None if (r, it) == (1, 1) else 0.25 / (1 + r + it)
            iterations.append(IterationResult(outputs, runtime=runtime, runner_name=runner))
        results.append((runner, iterations))
    results.save(path("polygraphy_outputs.json"))


def safetensors_inputs():
    # Written by hand (the format is an 8-byte little-endian header length, a JSON header, then
    # the data). The header lists the tensors alphabetically while the data is in another order;
    # trtlens returns the data (offset) order.
    tensors = [
        ("input_ids", "I64", np.array([7, -(1 << 50)], dtype="<i8")),
        ("pixels", "F32", np.array([[0.0, 0.5], [-1.0, 3.25]], dtype="<f4")),
        ("mask", "BOOL", np.array([True, False, True])),
        ("scale", "F16", np.array(0.5, dtype="<f2")),
        ("bf", "BF16", np.array([1.5, -2.0], dtype=ml_dtypes.bfloat16)),
    ]
    header = {"__metadata__": {"format": "pt", "made_by": "make_fixtures.py"}}
    data = b""
    offsets = {}
    for name, dtype, array in tensors:
        raw = array.tobytes()
        offsets[name] = (dtype, list(array.shape), [len(data), len(data) + len(raw)])
        data += raw
    for name in sorted(offsets):
        dtype, shape, span = offsets[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": span}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path("inputs.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def polygraphy_cli():
    # A real `polygraphy run` (ONNX Runtime) of a tiny model whose outputs follow from its inputs:
    # x_half = float16(x), twice_ids = ids + ids, positive = x > 0 (graph output order).
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [2])
    zero = helper.make_tensor("zero_value", TensorProto.FLOAT, [], [0.0])
    nodes = [
        helper.make_node("Constant", [], ["zero"], value=zero),
        helper.make_node("Cast", ["x"], ["x_half"], to=TensorProto.FLOAT16),
        helper.make_node("Add", ["ids", "ids"], ["twice_ids"]),
        helper.make_node("Greater", ["x", "zero"], ["positive"]),
    ]
    outputs = [
        helper.make_tensor_value_info("x_half", TensorProto.FLOAT16, [2, 3]),
        helper.make_tensor_value_info("twice_ids", TensorProto.INT64, [2]),
        helper.make_tensor_value_info("positive", TensorProto.BOOL, [2, 3]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "tiny", [x, ids], outputs), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path("tiny.onnx"))
    for name in ["cli_inputs.json", "cli_outputs.json"]:
        if os.path.exists(path(name)):
            os.remove(path(name))
    subprocess.run(
        ["polygraphy", "run", path("tiny.onnx"), "--onnxrt", "--iterations", "2", "--seed", "1",
         "--val-range", "x:[-1,1]", "ids:[-1000,1000]",
         "--save-inputs", path("cli_inputs.json"), "--save-outputs", path("cli_outputs.json")],
        check=True,
    )


if __name__ == "__main__":
    numpy_dtypes()
    numpy_layouts()
    numpy_versions()
    polygraphy_inputs()
    polygraphy_outputs()
    safetensors_inputs()
    polygraphy_cli()
