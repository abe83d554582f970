"""Pictures for "Head from image" and "Head from view": a file read as bytes, or the active camera's
render of the selected object, with the crop and view the bridge's image encoder expects.

The encoder was trained on the generator's own framing (EG3D's orbit camera: radius 2.7 field
units, looking at the pivot (0, 0, 0.2), focal length `coords.focal_length()`). A Blender camera
anywhere else sees the head larger or smaller and off centre, so the render is cropped to the
square that shows the head as that camera would: centred on the pivot's projection, its side
scaled by (this camera's focal / distance) over (EG3D's focal / distance); the camera's angles
around the head give the view (yaw, pitch) the refinement renders from.
"""

from __future__ import annotations

import math
import struct
import tempfile
from pathlib import Path

import bpy
import mathutils
import numpy as np
from bpy_extras.object_utils import world_to_camera_view

from ..bridge.errors import BridgeError
from ..mesh_export import coords
from .work import MAX_PICTURE_BYTES

VIEW_SIZE = 384
"""Side of the square render "Head from view" makes (then cropped)."""
MAX_PIXELS = 40_000_000
"""Larger pictures are refused before Blender decodes them (the bridge's own limit)."""
SENT_SIZE = 512
"""A picture file too large to send is scaled to this many pixels on its longer side (the encoder sees 64)."""


def read_picture(path: str) -> bytes:
    """A picture file's bytes for the bridge, scaled down by Blender when too large to send."""
    file = Path(bpy.path.abspath(path))
    if not file.is_file():
        raise BridgeError(f"No picture at {file}; choose a PNG or JPEG file.")
    data = file.read_bytes()
    if not data:
        raise BridgeError(f"{file.name} is empty (0 bytes); choose a PNG or JPEG file of a head.")
    if len(data) <= MAX_PICTURE_BYTES:
        return data  # the bridge reads it, and says what is wrong with it if anything is
    size = declared_size(data)
    if size is None:
        raise BridgeError(f"{file.name} is not a PNG or JPEG file Blender can send; choose one.")
    if size[0] * size[1] > MAX_PIXELS:
        raise BridgeError(f"{file.name} is {size[0]} x {size[1]} pixels; use a picture of at most {MAX_PIXELS // 10**6} megapixels.")
    try:
        image = bpy.data.images.load(str(file), check_existing=False)
    except RuntimeError:
        raise BridgeError(f"Blender cannot read {file.name} as a picture; choose a PNG or JPEG file.") from None
    upright = None
    try:
        width, height = image.size
        scale = SENT_SIZE / max(width, height, 1)
        if scale < 1:
            image.scale(max(8, round(width * scale)), max(8, round(height * scale)))
        orientation = exif_orientation(data)
        if orientation != 1:  # Blender ignores EXIF: a phone's portrait would reach the bridge on its side
            upright = _turned(image, orientation)
        data = _png_bytes(upright or image)
    finally:
        bpy.data.images.remove(image)
        if upright is not None:
            bpy.data.images.remove(upright)
    if len(data) > MAX_PICTURE_BYTES:
        raise BridgeError(f"{file.name} is still {len(data) // 1000} kB at {SENT_SIZE} pixels; save it as a JPEG and try again.")
    return data


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) that a PNG or JPEG file's header declares, read before Blender decodes
    anything (a 20000^2 picture would take gigabytes); None for other files."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + length
    return None


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8; 1 = as stored) of a JPEG's APP1 or a PNG's eXIf block, read from
    the bytes; 1 when there is none or it cannot be read."""
    tiff = None
    if data[:2] == b"\xff\xd8":
        at = 2
        while at + 4 <= len(data) and data[at] == 0xFF and data[at + 1] not in (0xDA, 0xD9):
            (length,) = struct.unpack(">H", data[at + 2 : at + 4])
            if data[at + 1] == 0xE1 and data[at + 4 : at + 10] == b"Exif\0\0":
                tiff = data[at + 10 : at + 2 + length]
                break
            at += 2 + length
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        at = data.find(b"eXIf")
        if at >= 4:
            (length,) = struct.unpack(">I", data[at - 4 : at])
            tiff = data[at + 4 : at + 4 + length]
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        (first,) = struct.unpack(order + "I", tiff[4:8])
        (entries,) = struct.unpack(order + "H", tiff[first : first + 2])
        for index in range(entries):
            entry = tiff[first + 2 + 12 * index : first + 14 + 12 * index]
            tag, kind = struct.unpack(order + "HH", entry[:4])
            if tag == 0x0112 and kind == 3:
                (value,) = struct.unpack(order + "H", entry[8:10])
                return value if 1 <= value <= 8 else 1
    except (KeyError, TypeError, struct.error):
        pass
    return 1


def _turned(image, orientation: int):
    """A new Blender image of `image` turned upright as EXIF `orientation` says."""
    width, height = image.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    rows = pixels.reshape(height, width, 4)[::-1]  # top row first, as EXIF counts
    turn = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }[orientation]
    upright = np.ascontiguousarray(turn(rows)[::-1])
    turned = bpy.data.images.new("text_edit_upright", upright.shape[1], upright.shape[0], alpha=True)
    turned.pixels.foreach_set(upright.ravel())
    return turned


def _png_bytes(image) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "picture.png"
        image.filepath_raw = str(out)
        image.file_format = "PNG"
        image.save()
        return out.read_bytes()


def view_of_head(scene, camera, head, size: int) -> tuple[tuple[int, int, int], float, float]:
    """The crop (left, top, side in pixels of a size x size render), yaw and pitch (degrees) at
    which `camera` sees the Text Edit object `head`, in the encoder's framing."""
    bpy.context.view_layer.update()  # matrix_world of objects moved since the last redraw
    to_head = head.matrix_world.inverted()
    scale = coords.METRES_PER_FIELD_UNIT * head.matrix_world.to_scale()[0]
    rotation = coords.FIELD_TO_BLENDER_ROTATION
    camera_in_head = np.array(to_head @ camera.matrix_world.translation) / coords.METRES_PER_FIELD_UNIT
    position = rotation.T @ camera_in_head  # field units, head space
    radius = float(np.linalg.norm(position))
    if radius < 1e-6:
        raise BridgeError("The camera sits inside the head; move it in front of the face.")
    yaw = math.degrees(math.atan2(position[0], position[2]))
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, position[1] / radius))))
    pivot_world = head.matrix_world @ mathutils.Vector(coords.field_to_blender(coords.FFHQ_PIVOT).tolist())
    distance = (camera.matrix_world.translation - pivot_world).length / scale
    reference = float(np.linalg.norm(np.array(coords.orbit_origin(yaw, pitch)) - np.array(coords.FFHQ_PIVOT)))
    data = camera.data
    if data.type != "PERSP":
        raise BridgeError("Head from view needs a perspective camera; switch the active camera's type to Perspective.")
    focal = data.lens / (data.sensor_height if data.sensor_fit == "VERTICAL" else data.sensor_width)
    side = size * (focal / distance) * (reference / coords.focal_length())
    centre = world_to_camera_view(scene, camera, pivot_world)
    if centre.z <= 0:
        raise BridgeError("The selected head is behind the camera; point the active camera at its face.")
    cx, cy = centre.x * size, (1 - centre.y) * size
    left, top, side = round(cx - side / 2), round(cy - side / 2), round(side)
    if side < 16:
        raise BridgeError("The head is too small in the camera's view; move the camera closer.")
    if left < 0 or top < 0 or left + side > size or top + side > size:
        raise BridgeError("The camera does not see the whole head; move it back, or centre the head in its view.")
    return (left, top, side), yaw, pitch


def render_view(scene, size: int = VIEW_SIZE) -> bytes:
    """The active camera's render of the scene as PNG bytes (a size x size still; the scene's
    render settings are put back afterwards)."""
    render = scene.render
    kept = (render.resolution_x, render.resolution_y, render.resolution_percentage, render.filepath, render.image_settings.file_format)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "view.png"
        try:
            render.resolution_x = render.resolution_y = size
            render.resolution_percentage = 100
            render.image_settings.file_format = "PNG"
            render.filepath = str(out)
            bpy.ops.render.render(write_still=True)
        finally:
            render.resolution_x, render.resolution_y, render.resolution_percentage, render.filepath = kept[:4]
            render.image_settings.file_format = kept[4]
        if not out.is_file():
            raise BridgeError("Blender's render made no picture; check the scene's render engine and camera.")
        return out.read_bytes()
