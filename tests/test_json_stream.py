"""The JSON array stream: a fault costs its own record; the brackets are found through strings and escapes."""

from __future__ import annotations

import json

import pytest

from pipeline.sources.base import SourceError
from pipeline.sources.json_stream import Fault, iter_array

RECORDS = [{"image_id": i, "name": 'a "quoted" ]}, [and] {braced} \\ name', "pad": "x" * (50 * i)} for i in range(6)]


def items(tmp_path, data: bytes) -> list:
    f = tmp_path / "a.json"
    f.write_bytes(data)
    return list(iter_array(f))


def shape(out: list) -> list:
    return [x.index if isinstance(x, Fault) and x.in_record else "after" if isinstance(x, Fault) else x[1]["image_id"] if isinstance(x[1], dict) else x[1] for x in out]


def test_a_clean_array_reads_as_json_does(tmp_path):
    text = json.dumps(RECORDS, indent=1).encode()
    assert items(tmp_path, text) == list(enumerate(RECORDS))
    assert items(tmp_path, b"\xef\xbb\xbf [ ]") == [] and items(tmp_path, b"[1, 2.5, null]") == [(0, 1), (1, 2.5), (2, None)]


@pytest.mark.parametrize("body,says", [(b"", "the file is empty"), (b" \n\t", "the file is empty"), (b'{"images": []}', "the top level is an object"), (b'"x"', "the top level is a string")])
def test_what_is_not_an_array_is_a_clear_error(tmp_path, body, says):
    with pytest.raises(SourceError, match=says):
        items(tmp_path, body)


def test_faults_cost_their_own_record(tmp_path):
    text = json.dumps(RECORDS).encode()
    at = text.index(b'"image_id": 2') + len(b'"image_id": 2')
    out = items(tmp_path, text[:at] + b"x" + text[at:])  # a stray byte
    assert shape(out) == [0, 1, 2, 3, 4, 5] and isinstance(out[2], Fault) and out[2].lost_bytes == 0
    assert "every later record was read" in out[2].describe("a.json")
    out = items(tmp_path, text.replace(b'"image_id": 3', b'"image_id": NaN'))  # not JSON, but Python's json reads it
    assert out[3][1]["image_id"] != out[3][1]["image_id"] and shape(out)[4:] == [4, 5]
    out = items(tmp_path, text.replace(b'"image_id": 1', b'"image_id": "\xff"'))  # not UTF-8
    assert isinstance(out[1], Fault) and "utf-8" in out[1].detail and shape(out)[2:] == [2, 3, 4, 5]
    assert shape(items(tmp_path, b"[1,,2]")) == [1, 1, 2]
    assert shape(items(tmp_path, text + b" trailing")) == [0, 1, 2, 3, 4, 5, "after"]


def test_broken_brackets_say_what_they_hid(tmp_path):
    text = json.dumps(RECORDS).encode()
    at = text.index(b'{"image_id": 2')
    out = items(tmp_path, text[:at] + b"{" + text[at:])  # never closed: records 2.. are swallowed
    fault = out[-1]
    assert shape(out) == [0, 1, 2] and fault.offset == at and fault.lost_bytes == len(text) + 1 - at
    assert fault.later_records == 3 and "about 3 more record(s) lost" in fault.describe("a.json")
    out = items(tmp_path, text[: len(text) - 30])  # cut off inside the last record
    assert shape(out) == [0, 1, 2, 3, 4, 5] and out[-1].later_records == 0
