"""What `tfkd distill` and `tfkd export` read: MovieLens (`--dataset`) or the
user's files (`--data`), a feature spec, a teacher.

Every function raises `CommandError` with a message written for the
command line; `tfkd.cli.main.main` prints it as one line and exits 1.
"""

import argparse
import os


class CommandError(Exception):
    """A failure with a message written for the command line."""


def list_column(text):
    """The argparse type of `--list-column NAME=SEP`: `(name, sep)`."""
    name, equals, separator = text.partition("=")
    if not (name and equals and separator):
        raise argparse.ArgumentTypeError(
            f"expected NAME=SEPARATOR (e.g. genres='|'), got {text!r}")
    return name, separator


def hash_column(text):
    """The argparse type of `--hash-column NAME=BUCKETS`: `(name, n)`."""
    name, equals, buckets = text.partition("=")
    if not (name and equals and buckets.isdigit() and int(buckets) >= 1):
        raise argparse.ArgumentTypeError(
            f"expected NAME=BUCKETS (e.g. session=1048576), got {text!r}")
    return name, int(buckets)


def movielens(dataset):
    """The loader of `--dataset`: `movielens_100k` or `movielens_1m`."""
    from tfkd import datasets

    return {"ml-100k": datasets.movielens_100k,
            "ml-1m": datasets.movielens_1m}[dataset]


def load_data(args, seed=42, split="random", batch_size=256):
    """MovieLens (`--dataset`), or the user's files with `--data`.

    Args:
        args: `argparse.Namespace` with `data`, `label`, `spec`, `task` and
            `data_dir`.
        seed: int. Seed of the random split. Defaults to `42`.
        split: str. MovieLens split; `--data` allows `"random"` only.
            Defaults to `"random"`.
        batch_size: int. Examples per batch of the datasets. Defaults to
            `256`.

    Returns:
        `tfkd.datasets.MovieLensData`.

    Raises:
        CommandError: on flags that do not go together.
        FileNotFoundError, ValueError: from the loaders (a wrong
            `--data-dir`, a problem in the files named by row and column).

    Example:

    ```python
    data = load_data(build_parser().parse_args(["distill"]))
    ```
    """
    from tfkd import datasets

    lists = getattr(args, "list_column", None)
    hashed = getattr(args, "hash_column", None)
    columns = {"min_count": getattr(args, "min_count", 1),
               "max_tokens": getattr(args, "max_tokens", None),
               "list_columns": dict(lists) if lists else None,
               "hash_columns": dict(hashed) if hashed else None}
    dataset = getattr(args, "dataset", "ml-100k")
    if args.data is not None and dataset != "ml-100k":
        raise CommandError(
            f"--dataset {dataset} and --data {args.data} name two data "
            "sets: drop one of them."
        )
    if args.data is None:
        if args.label or args.spec or columns != {
            "min_count": 1, "max_tokens": None, "list_columns": None,
            "hash_columns": None,
        }:
            raise CommandError(
                "--label, --spec, --min-count, --max-tokens, --list-column "
                "and --hash-column describe the files given with --data; "
                "pass --data PATH, or leave them out for MovieLens."
            )
        return movielens(dataset)(
            task=args.task or "ctr", split=split, seed=seed,
            data_dir=args.data_dir, batch_size=batch_size,
        )
    if args.data_dir:
        raise CommandError(
            "--data-dir locates MovieLens-100K; it does not go with --data "
            f"{args.data}. Drop one of them."
        )
    if split != "random":
        raise CommandError(
            f"--split {split} needs MovieLens-100K; files given with "
            "--data are split at random (seeded by --seed)."
        )
    spec = read_spec(args.spec) if args.spec else None
    if spec is None and not args.label:
        raise CommandError(
            f"--data {args.data} needs --label COLUMN (the label column), "
            "or --spec SPEC.json that names it."
        )
    return datasets.from_files(
        args.data, label=args.label, spec=spec, task=args.task, seed=seed,
        batch_size=batch_size, **columns,
    )


def check_writable(path, flag):
    """Raises `CommandError` unless a file can be written at `path`.

    Args:
        path: str. Where a command will write.
        flag: str. The flag or argument that named it, for the message.
    """

    folder = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise CommandError(f"{flag} {path} is a folder; name a file in it.")
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise CommandError(
            f"{flag} {path} cannot be written: {existing} is a file, not a "
            "folder."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CommandError(
            f"{flag} {path} cannot be written: no write permission in "
            f"{existing}. Pick another path."
        )


def read_spec(path):
    """Reads a `FeatureSpec` from the JSON file at `path` (`--spec`)."""
    from tfkd.datasets import spec_files

    try:
        return spec_files.load_spec(path)
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise CommandError(
            f"--spec {path} is not a feature spec: {e}. Write one with "
            "--spec-out and edit it."
        ) from e


def default_spec_path(output):
    """`student.spec.json` beside `student.keras`: where `distill` keeps
    the vocabularies when `--spec-out` is not given."""
    stem = output[: -len(".keras")] if output.endswith(".keras") else output
    return stem + ".spec.json"


def needs_spec_file(args, spec):
    """Whether `distill` must write the spec although `--spec-out` was not
    given: it built vocabularies (which only the spec keeps) or hashed a
    column (which the spec says)."""
    mapped = any(f.is_mapped for f in spec.features)
    return args.data is not None and not args.spec and mapped


def refuse_rebuilt_vocabularies(args, spec):
    """Raises unless a spec numbers the ids of `export --data` as in
    training: vocabularies rebuilt here may number them otherwise."""
    names = _vocabularies(spec)
    if names and not args.spec:
        raise CommandError(
            f"--data {args.data} has columns with a vocabulary "
            f"({', '.join(names)}): pass --spec SPEC.json, the spec tfkd "
            "distill wrote (--spec-out, or STUDENT.spec.json beside the "
            "student), so the ids are numbered as in training."
        )


def _vocabularies(spec):
    return [f.name for f in spec.features if f.vocabulary is not None]


def write_spec(spec, path):
    """Writes `spec` as JSON to `path` (`--spec-out`) and says so; a
    large vocabulary goes in a file beside it (`spec_files.save_spec`)."""
    from tfkd.datasets import spec_files

    written = spec_files.save_spec(spec, path)
    beside = ""
    if len(written) > 1:
        beside = (f", {len(written) - 1} vocabularies in "
                  f"{os.path.dirname(written[0])}")
    print(f"Feature spec written to {path}{beside} (edit it, then pass "
          "--spec)")


def load_teacher(path, spec):
    """Loads the `--teacher` model; its inputs must be features of `spec`.

    Args:
        path: str. A `.keras` file holding one model (not a Distiller).
        spec: `FeatureSpec` of the data.

    Returns:
        The `keras.Model`.

    Raises:
        CommandError: for a saved Distiller, or inputs the data lacks.
    """
    import keras

    teacher = keras.models.load_model(path)
    if hasattr(teacher, "teacher") and hasattr(teacher, "student"):
        raise CommandError(
            f"--teacher {path} is a saved Distiller; pass the teacher model "
            "itself (distiller.teacher.save(...))."
        )
    check_inputs(teacher, spec, f"teacher {path}")
    return teacher


def check_inputs(model, spec, what):
    """Raises unless every input the model declares is a feature of spec."""
    from tfkd._internal import model_utils

    names = model_utils.input_names(model) or []
    missing = [name for name in names if name not in spec.names]
    if missing:
        raise CommandError(
            f"The {what} takes inputs {names}; the data has no "
            f"{', '.join(map(repr, missing))}. Its features: "
            f"{', '.join(spec.names)} (label '{spec.label}'). Rename the "
            "columns, or pass the data the model was trained on."
        )


def spec_for_model(spec, model, path):
    """The data's spec cut to the model's inputs, with its table sizes.

    The sidecar describes the exported model, so a vocabulary the model's
    embedding layer holds wins over the one inferred from these files.

    Args:
        spec: `FeatureSpec` of the data.
        model: `keras.Model` about to be exported.
        path: str. The model's file, for messages.

    Returns:
        A `FeatureSpec` with the model's inputs only.

    Raises:
        CommandError: if the model takes inputs the data lacks.
    """
    from tfkd import datasets
    from tfkd._internal import model_utils
    from tfkd.export import id_mapping
    from tfkd.models import embedding_utils

    check_inputs(model, spec, f"model {path}")
    names = model_utils.input_names(model) or list(spec.names)
    _check_vocabularies_fit(spec.features, id_mapping.embedding_sizes(model),
                            path)
    sizes = embedding_utils.vocabulary_sizes(model)
    features = tuple(
        _with_table_size(f, sizes[f.name], path)
        if f.name in sizes and not f.is_numeric else f
        for f in spec.features
        if f.name in names
    )
    return datasets.FeatureSpec(
        features, spec.task, spec.label, spec.label_kind
    )


def _with_table_size(feature, size, path):
    import dataclasses

    _check_vocabularies_fit([feature], {feature.name: size}, path)
    return dataclasses.replace(feature, vocabulary_size=size)


def _check_vocabularies_fit(features, sizes, path):
    # A table smaller than the vocabulary (or the hash buckets) was
    # trained on other ids.
    for feature in features:
        size = sizes.get(feature.name)
        if not feature.is_mapped or size is None:
            continue
        if feature.vocabulary is not None:
            count, what = len(feature.vocabulary), "vocabulary has"
        else:
            count, what = feature.hash_buckets, "hashing has"
        if size < count + 1:
            raise CommandError(
                f"The model {path} has {size} rows for '{feature.name}', "
                f"but the data's {what} {count:,} values: it was trained "
                "on other files or another spec. Pass the --spec written "
                "by tfkd distill --spec-out for it."
            )
