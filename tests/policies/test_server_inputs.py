"""Well-formed requests written the way numpy code writes them, through a real server.

The server holds a tiny random-weight VLA (OFT head: deterministic, one pass), so every answer
can be compared with the policy's own answer to the same observation in native form.
"""

import numpy as np
import pytest
from tiny_checkpoint import write_checkpoint_set

from policies.server import PolicyServer
from policies.wire import pack, unpack

torch = pytest.importorskip("torch")
from websockets.sync.client import connect  # noqa: E402

OBS = {"image": np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3),
       "state": np.array([0.1, 0.2, 0.3, 0.4], np.float32), "instruction": "reach the goal"}


@pytest.fixture(scope="module")
def tiny_oft(tmp_path_factory):
    from policies.vla_policy import VLAPolicy

    root = write_checkpoint_set(tmp_path_factory.mktemp("inputs_ckpt"), {"oft": "oft"})
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield VLAPolicy(root, "oft")
    torch.set_num_threads(before)


def test_big_endian_arrays_and_numpy_int_scalars_are_served(tiny_oft):
    prev = np.linspace(-0.5, 0.5, 8, dtype=np.float32).reshape(2, 4)
    native = [OBS, {**OBS, "prev_actions": prev, "frozen_steps": 1}]
    as_sent = [{**OBS, "state": OBS["state"].astype(">f4")},  # another machine's byte order
               {**OBS, "prev_actions": prev.astype(">f8"), "frozen_steps": np.int64(1)}]
    with PolicyServer(tiny_oft, port=0) as server, \
            connect(f"ws://127.0.0.1:{server.port}", max_size=None) as ws:
        unpack(ws.recv())
        for want, message in zip(native, as_sent, strict=True):
            ws.send(pack(message))
            reply = ws.recv(timeout=30)
            assert not isinstance(reply, str), reply
            np.testing.assert_array_equal(unpack(reply)["actions"],
                                          tiny_oft.infer(want)["actions"])
