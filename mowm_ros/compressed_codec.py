"""
Decode sensor_msgs/CompressedImage (JPEG/PNG colour, compressedDepth PNG) with Pillow.

Colour is image_transport's ``compressed`` transport, depth its ``compressedDepth``.

Like ``image_codec`` (whose errors, size limit and depth conventions it shares) it reads plain
attributes (``format``, ``data``), so it works on rclpy and ``rosbags`` messages alike, and
never imports rclpy. The ``format`` field is ``"<original encoding>; <codec> compressed
<encoding>"`` for colour (e.g. ``"rgb8; jpeg compressed bgr8"``; the file holds true colours
whatever the layout named there, since the encoder converts to OpenCV's BGR before writing),
and ``"<original encoding>; compressedDepth png"`` for depth. compressedDepth data starts with
image_transport's 12-byte ConfigHeader (int32 compression format, float32 depthParam[2],
little-endian), then a 16-bit greyscale PNG: millimetres for 16UC1, quantised inverse depth
for 32FC1, decoded as ``depth = depthParam[0] / (q - depthParam[1])`` for ``q != 0``.
"""

import io
import struct
import warnings

from mowm_ros.image_codec import (check_image_size, CodecError, depth_from_metres,
                                  depth_from_millimetres)
import numpy as np
from PIL import Image, UnidentifiedImageError

COMPRESSED_DEPTH_HEADER = struct.Struct('<iff')   # compression format, depthParam[2]
COLOR_FORMATS = ('JPEG', 'PNG')


def _parts(msg):
    """(original encoding or '', codec words) of a CompressedImage's ``format`` field."""
    text = str(msg.format).strip()
    if ';' in text:
        original, codec = text.split(';', 1)
        return original.strip(), codec.split()
    return '', text.split()


def _open(data, allowed, what):
    """Return the decoded Pillow image of ``data`` (JPEG or PNG bytes), size-checked first."""
    if not isinstance(data, (bytes, bytearray)):
        data = np.asarray(data, dtype=np.uint8).tobytes()
    if not data:
        raise CodecError(f'{what} has no data')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(bytes(data)))
            if image.format not in allowed:
                raise CodecError(f'{what} holds {image.format} data, expected '
                                 f'{" or ".join(allowed)}')
            check_image_size(*image.size)   # before decoding: the header declares the size
            image.load()
    except UnidentifiedImageError:
        raise CodecError(f'{what} data is not a {" or ".join(allowed)} image '
                         f'(starts with {bytes(data[:8])!r})') from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as exc:
        if isinstance(exc, CodecError):
            raise
        raise CodecError(f'{what} cannot be decoded: {exc}') from None
    return image


def decode_compressed_rgb(msg):
    """RGB uint8 (H, W, 3) from a JPEG or PNG CompressedImage (colour or mono)."""
    original, codec = _parts(msg)
    if 'compressedDepth' in codec:
        raise CodecError(f'format {msg.format!r} is compressedDepth, not a colour image')
    image = _open(msg.data, COLOR_FORMATS, 'compressed image')
    if image.mode in ('L', 'P', 'RGBA', 'LA', 'RGB', 'CMYK', 'YCbCr'):
        return np.ascontiguousarray(np.asarray(image.convert('RGB'), dtype=np.uint8))
    raise CodecError(f'compressed image of mode {image.mode} (format {msg.format!r}) is not '
                     '8-bit colour or mono')


def _png_values(data, what):
    """Integer (H, W) values of a greyscale PNG."""
    image = _open(data, ('PNG',), what)
    values = np.asarray(image)
    if values.ndim != 2 or image.mode not in ('I;16', 'I;16B', 'I', 'L'):
        raise CodecError(f'{what} PNG has mode {image.mode}, expected 16-bit greyscale')
    return values.astype(np.int64)


def decode_compressed_depth(msg):
    """
    Depth float32 (H, W) in metres (NaN invalid) from a CompressedImage on a depth topic.

    Accepts compressedDepth (16UC1 millimetres, or 32FC1 as quantised inverse depth) and a
    plain 16-bit PNG of millimetres (``"16UC1; png compressed"``).
    """
    original, codec = _parts(msg)
    if 'compressedDepth' not in codec:
        if original in ('16UC1', 'mono16') and codec and codec[0] == 'png':
            return depth_from_millimetres(_png_values(msg.data, 'compressed 16UC1 depth'))
        raise CodecError(f'unsupported compressed depth format {msg.format!r}; expected '
                         '"16UC1; compressedDepth png", "32FC1; compressedDepth png" or '
                         '"16UC1; png compressed"')
    method = codec[codec.index('compressedDepth') + 1:] or ['png']
    if method[0] != 'png':
        raise CodecError(f'compressedDepth method {method[0]!r} is not supported (only png)')
    if original not in ('16UC1', '32FC1'):
        raise CodecError(f'compressedDepth of {original or "an unnamed encoding"!r} is not '
                         'supported; expected 16UC1 or 32FC1')
    data = msg.data
    if not isinstance(data, (bytes, bytearray)):
        data = np.asarray(data, dtype=np.uint8).tobytes()
    if len(data) <= COMPRESSED_DEPTH_HEADER.size:
        raise CodecError(f'compressedDepth data has {len(data)} bytes, shorter than its '
                         f'{COMPRESSED_DEPTH_HEADER.size}-byte header and a PNG')
    _, quant_a, quant_b = COMPRESSED_DEPTH_HEADER.unpack_from(data)
    values = _png_values(bytes(data[COMPRESSED_DEPTH_HEADER.size:]), 'compressedDepth')
    if original == '16UC1':
        return depth_from_millimetres(values)
    if not (np.isfinite(quant_a) and np.isfinite(quant_b)) or quant_a == 0:
        raise CodecError(f'compressedDepth 32FC1 header has unusable depthParam '
                         f'[{quant_a}, {quant_b}]')
    with np.errstate(divide='ignore', invalid='ignore'):
        depth = np.float32(quant_a) / (values.astype(np.float32) - np.float32(quant_b))
    depth[values == 0] = np.nan
    return depth_from_metres(depth)
