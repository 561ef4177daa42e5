"""A small test-pattern video track (cheap to encode on a busy test machine)."""

from __future__ import annotations

from aiortc.mediastreams import VideoStreamTrack
from av import VideoFrame


class PatternVideoTrack(VideoStreamTrack):
    """Moving grey bars at 160x120: enough to prove frames cross the call."""

    def __init__(self, width: int = 160, height: int = 120) -> None:
        super().__init__()
        self._width = width
        self._height = height
        self._count = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=self._width, height=self._height, format="yuv420p")
        shade = (self._count * 8) % 256
        for index, plane in enumerate(frame.planes):
            plane.update(bytes([shade if index == 0 else 128]) * plane.buffer_size)
        self._count += 1
        frame.pts = pts
        frame.time_base = time_base
        return frame
