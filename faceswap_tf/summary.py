"""What an extract or convert run did: its counts and where its time went, for the closing
lines both print on standard error."""

import dataclasses


@dataclasses.dataclass
class RunSummary:
    stages: tuple[str, ...]
    verb: str = "written"  # what happened to the faces kept: "written", "swapped"
    frames: int = 0
    frames_with_face: int = 0
    faces: int = 0
    faces_rejected: int = 0  # found, but not the reference person
    sources: int = 0
    files_skipped: list[str] = dataclasses.field(default_factory=list)  # one line each
    warnings: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    stage_seconds: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.stage_seconds = {**dict.fromkeys(self.stages, 0.0), **self.stage_seconds}

    @property
    def fps(self) -> float:
        return self.frames / max(self.seconds, 1e-9)

    def add_times(self, timings: dict) -> None:
        for stage, seconds in timings.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds

    def shares(self) -> str:
        busy = sum(self.stage_seconds.values()) or 1.0
        return "  ".join(f"{k} {100 * v / busy:.0f}%" for k, v in self.stage_seconds.items() if v)

    def lines(self) -> list[str]:
        lines = [f"frames: {self.frames}  with a face: {self.frames_with_face}  "
                 f"faces {self.verb}: {self.faces}  seconds: {self.seconds:.1f}  ({self.fps:.1f} frames/s)"]
        if any(self.stage_seconds.values()):
            lines.append(f"time per stage (summed over workers): {self.shares()}")
        if self.faces_rejected:
            lines.append(f"faces not matching the reference: {self.faces_rejected}")
        if self.files_skipped:
            lines.append(f"files skipped: {len(self.files_skipped)}")
        lines += [f"warning: {warning}" for warning in self.warnings]
        return lines
