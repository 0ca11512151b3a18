"""RouteLLM's per-question layout: read the CSVs, drop contaminated prompts, split MMLU by subject.

A file has a `prompt` column and one correctness column per model (True/False or 1/0); other
columns are ignored. A directory stands for every `*.csv` under it. The MMLU split is by subject,
never by row, so that the evaluation measures how the router does on topics it never saw.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final, Literal, NamedTuple

from raas.router.features import FeatureConfig, RouteRequest, extract
from raas.router.model import RouterError
from raas.router.train import Example

PROMPT_COLUMN: Final = "prompt"
CONTAMINATED_FILE: Final = "contaminated_prompts.jsonl"
DEFAULT_DATA: Final = Path("/work/shared/data/routellm-mmlu")

_TRUE: Final = frozenset({"true", "1", "1.0"})
_FALSE: Final = frozenset({"false", "0", "0.0"})

# The 57 MMLU subjects in alphabetical order. The evaluation part is every fourth subject
# starting with the third (positions 2, 6, 10, ...): a rule fixed before any result was seen,
# not a choice of the subjects the router happens to do well on. The two subjects that share
# 78 questions (clinical_knowledge, college_medicine) both fall in the training part, so no
# evaluation question appears in training.
MMLU_SUBJECTS: Final[tuple[str, ...]] = (
    "abstract_algebra",
    "anatomy",
    "astronomy",
    "business_ethics",
    "clinical_knowledge",
    "college_biology",
    "college_chemistry",
    "college_computer_science",
    "college_mathematics",
    "college_medicine",
    "college_physics",
    "computer_security",
    "conceptual_physics",
    "econometrics",
    "electrical_engineering",
    "elementary_mathematics",
    "formal_logic",
    "global_facts",
    "high_school_biology",
    "high_school_chemistry",
    "high_school_computer_science",
    "high_school_european_history",
    "high_school_geography",
    "high_school_government_and_politics",
    "high_school_macroeconomics",
    "high_school_mathematics",
    "high_school_microeconomics",
    "high_school_physics",
    "high_school_psychology",
    "high_school_statistics",
    "high_school_us_history",
    "high_school_world_history",
    "human_aging",
    "human_sexuality",
    "international_law",
    "jurisprudence",
    "logical_fallacies",
    "machine_learning",
    "management",
    "marketing",
    "medical_genetics",
    "miscellaneous",
    "moral_disputes",
    "moral_scenarios",
    "nutrition",
    "philosophy",
    "prehistory",
    "professional_accounting",
    "professional_law",
    "professional_medicine",
    "professional_psychology",
    "public_relations",
    "security_studies",
    "sociology",
    "us_foreign_policy",
    "virology",
    "world_religions",
)
EVALUATION_SUBJECTS: Final[tuple[str, ...]] = MMLU_SUBJECTS[2::4]
TRAINING_SUBJECTS: Final[tuple[str, ...]] = tuple(
    subject for subject in MMLU_SUBJECTS if subject not in EVALUATION_SUBJECTS
)

Split = Literal["all", "train", "eval"]


def subject_folds(folds: int = 4) -> list[tuple[str, ...]]:
    """The subjects in `folds` groups by the same rule (position modulo `folds`); fold 2 of 4 is
    `EVALUATION_SUBJECTS`. For cross-validation by subject."""
    return [MMLU_SUBJECTS[start::folds] for start in range(folds)]


class Row(NamedTuple):
    """One question: its prompt, whether each model answered it correctly, where it came from."""

    prompt: str
    weak: bool
    strong: bool
    subject: str  # the file's name without ".csv" and without a leading "mmlu_"


class Dataset(NamedTuple):
    """Rows read from RouteLLM files, and what was left out on the way."""

    rows: list[Row]
    files: list[Path]
    contaminated_file: Path | None
    contaminated_excluded: int


def subject_of(path: Path) -> str:
    """The subject a file holds: `mmlu_anatomy.csv` -> `anatomy`."""
    stem = path.stem
    return stem.removeprefix("mmlu_")


def csv_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The CSV files named, a directory standing for every `*.csv` under it (sorted)."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found = sorted(path.rglob("*.csv"))
            if not found:
                raise RouterError(f"{path}: directory holds no .csv file; expected RouteLLM CSVs")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise RouterError(f"{path}: no such file or directory")
    return files


def select_split(files: Sequence[Path], split: Split) -> list[Path]:
    """The files of one part of the MMLU split; every file must then be an MMLU subject."""
    if split == "all":
        return list(files)
    wanted = EVALUATION_SUBJECTS if split == "eval" else TRAINING_SUBJECTS
    chosen: list[Path] = []
    for path in files:
        subject = subject_of(path)
        if subject not in MMLU_SUBJECTS:
            raise RouterError(
                f"{path}: subject {subject!r} is not an MMLU subject, so it has no place in the "
                f"{split!r} split; expected files named mmlu_<subject>.csv, or --split all"
            )
        if subject in wanted:
            chosen.append(path)
    if not chosen:
        raise RouterError(f"no file of the {split!r} split among the {len(files)} given")
    return chosen


def find_contaminated(paths: Iterable[str | os.PathLike[str]]) -> Path | None:
    """`contaminated_prompts.jsonl` beside the data given (in a directory named, or its parent,
    or beside a file named, or in that folder's parent), if there is one."""
    for name in paths:
        path = Path(name)
        folder = path if path.is_dir() else path.parent
        for candidate in (folder / CONTAMINATED_FILE, folder.parent / CONTAMINATED_FILE):
            if candidate.is_file():
                return candidate
    return None


def read_contaminated(path: Path) -> set[str]:
    """The evaluation prompts RouteLLM found in its training data (field `eval_prompt`)."""
    prompts: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise RouterError(f"{path}: cannot read: {error.strerror}") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise RouterError(f"{path}:{number}: not JSON: {error.msg}") from error
        prompt = record.get("eval_prompt") if isinstance(record, dict) else None
        if not isinstance(prompt, str):
            raise RouterError(f"{path}:{number}: expected an object with a string `eval_prompt`")
        prompts.add(prompt)
    return prompts


def read_dataset(
    paths: Iterable[str | os.PathLike[str]],
    weak: str,
    strong: str,
    *,
    split: Split = "all",
    exclude_contaminated: bool = True,
) -> Dataset:
    """Rows from RouteLLM CSVs (files or directories), optionally one part of the MMLU split,
    without the prompts listed in a `contaminated_prompts.jsonl` found beside the data."""
    names = list(paths)
    if not names:
        raise RouterError("no data given; expected one or more CSV files or directories")
    files = select_split(csv_files(names), split)
    contaminated_file = find_contaminated(names) if exclude_contaminated else None
    contaminated = read_contaminated(contaminated_file) if contaminated_file else set()
    rows: list[Row] = []
    excluded = 0
    for path in files:
        for row in read_file(path, weak, strong):
            if row.prompt in contaminated:
                excluded += 1
            else:
                rows.append(row)
    return Dataset(rows, files, contaminated_file, excluded)


def read_file(path: Path, weak: str, strong: str) -> list[Row]:
    """One CSV's rows; a missing column or a value that is not a boolean raises RouterError."""
    subject = subject_of(path)
    try:
        with path.open(encoding="utf-8", newline="") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if header is None:
                raise RouterError(
                    f"{path}: empty file; expected a header with columns "
                    f"{PROMPT_COLUMN!r}, {weak!r}, {strong!r}"
                )
            positions = _positions(path, header, weak, strong)
            rows: list[Row] = []
            width = max(positions) + 1
            for record in reader:
                if not record:
                    continue
                line = reader.line_num
                if len(record) < width:
                    raise RouterError(
                        f"{path}:{line}: {len(record)} fields; expected at least {width} "
                        f"(as many as the header's columns up to {header[width - 1]!r})"
                    )
                prompt_at, weak_at, strong_at = positions
                rows.append(
                    Row(
                        record[prompt_at],
                        _boolean(path, line, weak, record[weak_at]),
                        _boolean(path, line, strong, record[strong_at]),
                        subject,
                    )
                )
    except OSError as error:
        raise RouterError(f"{path}: cannot read: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise RouterError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start})"
        ) from error
    except csv.Error as error:
        raise RouterError(f"{path}: not a readable CSV: {error}") from error
    if not rows:
        raise RouterError(f"{path}: no rows under the header; expected at least one question")
    return rows


def _positions(path: Path, header: list[str], weak: str, strong: str) -> tuple[int, int, int]:
    names = [name.strip() for name in header]
    if names and names[0].startswith("\ufeff"):
        names[0] = names[0][1:]  # a byte order mark written by a spreadsheet
    positions: list[int] = []
    for column, role in ((PROMPT_COLUMN, "the prompt"), (weak, "--weak"), (strong, "--strong")):
        if column not in names:
            raise RouterError(
                f"{path}: no column {column!r} ({role}); the header has "
                f"{', '.join(repr(name) for name in names)}"
            )
        positions.append(names.index(column))
    return positions[0], positions[1], positions[2]


def _boolean(path: Path, line: int, column: str, value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RouterError(
        f"{path}:{line}: column {column!r} holds {value!r}; expected True/False or 1/0"
    )


def examples_from_rows(
    rows: Iterable[Row], weak: str, strong: str, config: FeatureConfig
) -> list[Example]:
    """Two examples per question, one per model (tiers named after the columns), sharing the
    question's features: the model learns P(right | prompt) for each."""
    examples: list[Example] = []
    for row in rows:
        features = extract(RouteRequest(text=row.prompt), config)
        examples.append(Example(features, weak, row.weak))
        examples.append(Example(features, strong, row.strong))
    return examples
