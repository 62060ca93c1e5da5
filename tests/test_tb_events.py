"""The hand-written TensorBoard event files: CRC32C, framing, read back by TensorBoard."""
from __future__ import annotations

import math
import struct

import pytest

from lora_trainer.io.tb_events import EventFileWriter, crc32c, encode_event, masked_crc32c, tfrecord


def test_crc32c_known_vectors():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    assert crc32c(b"\x00" * 32) == 0x8A9136AA  # RFC 3720 B.4
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E


def test_tfrecord_framing():
    data = b"hello event"
    record = tfrecord(data)
    length, = struct.unpack("<Q", record[:8])
    assert length == len(data)
    assert struct.unpack("<I", record[8:12])[0] == masked_crc32c(record[:8])
    assert record[12:12 + length] == data
    assert struct.unpack("<I", record[-4:])[0] == masked_crc32c(data)
    crc = crc32c(data)
    assert masked_crc32c(data) == ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def test_event_encoding_bytes():
    raw = encode_event(1.5, 300, scalars={"a": 2.0})
    assert raw[:9] == b"\x09" + struct.pack("<d", 1.5)
    assert raw[9:12] == b"\x10\xac\x02"  # step 300 as a varint
    value = b"\x0a\x01a" + b"\x15" + struct.pack("<f", 2.0)
    assert raw[12:] == b"\x2a" + bytes([len(value) + 2]) + b"\x0a" + bytes([len(value)]) + value
    assert encode_event(0.0, 0, file_version="brain.Event:2").endswith(b"\x1a\x0dbrain.Event:2")


def read_records(path):
    data = path.read_bytes()
    records, pos = [], 0
    while pos < len(data):
        length, = struct.unpack("<Q", data[pos:pos + 8])
        assert struct.unpack("<I", data[pos + 8:pos + 12])[0] == masked_crc32c(data[pos:pos + 8])
        body = data[pos + 12:pos + 12 + length]
        assert struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])[0] == masked_crc32c(body)
        records.append(body)
        pos += 16 + length
    return records


def test_writer_file_name_and_first_record(tmp_path):
    with EventFileWriter(tmp_path / "logs") as writer:
        writer.add_scalar("loss", 0.5, 1)
    name = writer.path.name
    assert name.startswith("events.out.tfevents.") and writer.path.parent == tmp_path / "logs"
    records = read_records(writer.path)
    assert len(records) == 2
    assert records[0].endswith(b"\x1a\x0dbrain.Event:2")
    with pytest.raises(ValueError):
        writer.add_scalar("loss", 0.1, 2)


def test_read_back_with_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    writer = EventFileWriter(tmp_path)
    for step in range(1, 6):
        writer.add_scalar("loss/current", 1.0 / step, step, wall_time=1000.0 + step)
        writer.add_scalar("lr/unet", 1e-4 * step, step)
    writer.add_scalars({"loss/epoch": 0.25, "lr/text_encoder": 5e-5}, 2_000_000_000_123)
    writer.add_scalar("weird", float("nan"), 7)
    writer.add_scalar("big", 1e40, 8)
    writer.add_scalar("ünïcode tag", -3.5, 9)
    writer.flush()

    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == {"loss/current", "lr/unet", "loss/epoch", "lr/text_encoder", "weird",
                                          "big", "ünïcode tag"}
    loss = acc.Scalars("loss/current")
    assert [e.step for e in loss] == [1, 2, 3, 4, 5]
    assert [e.value for e in loss] == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2])
    assert [e.wall_time for e in loss] == [1001.0, 1002.0, 1003.0, 1004.0, 1005.0]
    assert [e.value for e in acc.Scalars("lr/unet")] == pytest.approx([1e-4 * s for s in range(1, 6)], rel=1e-6)
    assert acc.Scalars("loss/epoch")[0].step == 2_000_000_000_123
    assert math.isnan(acc.Scalars("weird")[0].value)
    assert acc.Scalars("big")[0].value == math.inf
    assert acc.Scalars("ünïcode tag")[0].value == -3.5
    writer.close()
