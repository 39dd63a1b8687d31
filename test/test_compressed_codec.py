"""CompressedImage decoding edge cases: each refusal names the problem."""

import struct
from types import SimpleNamespace

from bag_fixtures import pillow_bytes
from mowm_ros.compressed_codec import decode_compressed_depth, decode_compressed_rgb
from mowm_ros.image_codec import CodecError
import numpy as np
import pytest

MILLIMETRES = np.array([[0, 1000, 2500], [65535, 7, 300]], np.uint16)


def message(format_, data):
    return SimpleNamespace(format=format_, data=np.frombuffer(data, np.uint8))


def test_plain_16bit_png_depth_is_millimetres():
    png = pillow_bytes(MILLIMETRES, 'PNG')
    depth = decode_compressed_depth(message('16UC1; png compressed ', png))
    np.testing.assert_allclose(depth[~np.isnan(depth)], MILLIMETRES[MILLIMETRES > 0] / 1000.0,
                               rtol=1e-6)
    assert np.isnan(depth[0, 0])


@pytest.mark.parametrize('format_, data, problem', [
    ('16UC1; compressedDepth rvl', b'\0' * 20, "method 'rvl' is not supported"),
    ('16UC1; compressedDepth png', b'\0' * 12, 'shorter than its 12-byte header'),
    ('8UC1; compressedDepth png', b'\0' * 20, "compressedDepth of '8UC1' is not supported"),
    ('32FC1; compressedDepth png', struct.pack('<iff', 0, 0.0, 1.0)
     + pillow_bytes(MILLIMETRES, 'PNG'), 'unusable depthParam'),
    ('32FC1; compressedDepth png', struct.pack('<iff', 0, 1.0, 0.0)
     + pillow_bytes(np.zeros((2, 2, 3), np.uint8), 'PNG'), 'expected 16-bit greyscale'),
    ('16UC1; compressedDepth png', struct.pack('<iff', 0, 1.0, 0.0)
     + pillow_bytes(np.zeros((2, 2, 3), np.uint8), 'JPEG'), 'holds JPEG data, expected PNG'),
    ('bgr8; jpeg compressed bgr8', b'', 'unsupported compressed depth format'),
])
def test_bad_compressed_depth_is_named(format_, data, problem):
    with pytest.raises(CodecError, match=problem):
        decode_compressed_depth(message(format_, data))


@pytest.mark.parametrize('data, problem', [
    (b'', 'has no data'),
    (pillow_bytes(MILLIMETRES, 'PNG'), 'mode I;16 .* is not 8-bit colour or mono'),
    (pillow_bytes(np.zeros((1, 9000), np.uint8), 'PNG'), 'exceeds 8192 pixels'),
    (pillow_bytes(np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8), 'PNG')[:600],
     'cannot be decoded'),
])
def test_bad_compressed_colour_is_named(data, problem):
    with pytest.raises(CodecError, match=problem):
        decode_compressed_rgb(message('rgb8; png compressed bgr8', data))
