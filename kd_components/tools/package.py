"""Package a bundle with its trained weights as a self-contained zip for the MONAI model zoo or MONAI Label.

``python -m kd_components.tools.package --bundle bundles/student_kd --output dist [--student-modality t2] ...``

What the zip ``NAME.zip`` holds (the MONAI Bundle archive format: one top folder named after the model)::

    NAME/configs/*.json         every config (each bundle stands alone: no reference to this repository), the
                                overlays and ``--override`` values applied, ``bundle_root`` set to "."
    NAME/configs/metadata.json  the bundle's metadata; for the student, ``channel_def`` names the trained modality
    NAME/configs/logging.conf
    NAME/models/model.pt        the weights as a plain state dict (model-zoo form)
    NAME/models/model.ts        TorchScript export (``monai.bundle ckpt_export``), checked against the eager network
    NAME/large_files.yml        the weight files with their md5 (and ``--weights-url`` when given)
    NAME/docs/README.md, NAME/LICENSE
    NAME/scripts/prepare_datalist.py   the datalist from a BraTS folder (standard library only)
    NAME/kd_components/         the package's runtime wing (everything but ``tools``), under its own name so that
                                the configs' references stay as they are: the bundle trains, evaluates and infers
                                with MONAI and registry packages only, ``kd_components`` not installed. As for every
                                zoo bundle with code, the bundle folder must be on the Python path: run from it
                                (the configs' ``bundle_root`` is "."), or set ``PYTHONPATH``; MONAI Label and the
                                zoo's CI add it themselves.

A packaged student looks for its teacher beside itself, ``../brats_kdnet_teacher/models/model.pt`` (the packaged
teacher's folder in a MONAI Label app's ``model/`` or the zoo's ``models/``); ``--teacher-name`` or
``--override teacher_ckpt=...`` change that.

Names: ``brats_kdnet_teacher`` and ``brats_kdnet_student_<modality>``; in the pull-request form the zoo's
data_modality_task form, ``brats_mri_kd_teacher_segmentation`` and ``brats_mri_<modality>_kd_segmentation``, and a
student's teacher is the zoo's own ``brats_mri_segmentation`` (``../brats_mri_segmentation/models/model.pt`` in the
zoo's ``models/``): the zoo receives students, not a second BraTS model.

With ``--weights-url URL`` the zip takes the model zoo's pull-request form: the weights are left out of it (a zoo
pull request commits no weights) and written beside it into ``NAME_weights/`` for upload to ``URL``;
``large_files.yml`` names ``URL/model.pt`` (and ``model.ts``) with their md5, so that
``python -m monai.bundle download_large_files --bundle_path NAME`` fetches and checks them, as the zoo's
``ci/verify_bundle.py`` does.

Everything is checked before the zip exists: the weights load strictly into ``network_def``, the metadata passes
``verify_metadata`` against the shipped schema (``kd_components/schemas/meta_schema.json``), the inference config
has the properties MONAI requires, and the TorchScript output equals the eager output. The zip is written under a
temporary name and renamed at the end, so a failure never leaves a half-written archive.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

from kd_components.errors import InputError, command
from kd_components.files import atomic_path, file_md5

__all__ = ["SCHEMA_PATH", "apply_overrides", "package_bundle", "read_config", "verify_bundle_metadata"]

#: JSON schema of ``metadata.json``, written from the MONAI Bundle specification (the official schema URL cannot
#: be fetched offline; ``verify_metadata`` keeps a file already at ``--filepath``).
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "meta_schema.json"
DEFAULT_NAMES = {"teacher": "brats_kdnet_teacher", "student_kd": "brats_kdnet_student"}
#: names in the model zoo's form (data, its modality, task: ``brats_mri_segmentation``) for the pull-request form
#: (``weights_url``); a student's is ``brats_mri_<sequences>_kd_segmentation``
ZOO_NAMES = {"teacher": "brats_mri_kd_teacher_segmentation", "student_kd": "brats_mri_{modality}_kd_segmentation"}
#: the teacher of a student pull request: the zoo's own BraTS model (the zoo gets students, not a second teacher)
ZOO_TEACHER = "brats_mri_segmentation"
#: the parts of this package a zip carries (``tools`` are commands run from a checkout, not bundle code)
RUNTIME_SOURCE = Path(__file__).resolve().parents[1]


def _module_file(name: str) -> Path | None:
    """The source file of module ``kd_components.X.Y`` (its ``__init__.py`` for a package), or None."""
    parts = name.split(".")[1:]
    base = RUNTIME_SOURCE.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """``kd_components`` modules ``path`` imports, at any depth (function-level imports count)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kd_components")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kd_components"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def zoo_docs(text: str, own: str, teacher_name: str) -> str:
    """A bundle's ``docs/README.md`` as the packaged bundle ships it: no repository paths or commands.

    Blocks between ``<!-- repository -->`` and ``<!-- /repository -->`` (what needs this project's repository: its
    commands, tests, results page) are left out; ``bundles/<own>/`` paths become relative to the bundle folder,
    ``bundles/teacher`` the packaged teacher beside it; relative links out of the bundle keep their text only.
    """
    import re

    text = re.sub(r"<!-- repository -->\n.*?<!-- /repository -->\n\n?", "", text, flags=re.S)
    text = text.replace(f"bundles/{own}/", "").replace(f"`bundles/{own}`", "this bundle")
    text = text.replace("bundles/teacher/", f"../{teacher_name}/").replace("`bundles/teacher`", f"`{teacher_name}`")
    text = text.replace("`bundles/student_kd`", "the student bundles")
    text = re.sub(r"\[([^\]]+)\]\(\.\./[^)]*\)", r"\1", text)
    return text


#: the model zoo's isort settings (its setup.cfg): inside a zoo bundle ``kd_components`` is a third-party import
ZOO_ISORT = {"profile": "black", "line_length": 120, "known_first_party": ["models"]}


def _zoo_import_sorter(required: bool, zoo_root: Path):
    """A function that orders a carried file's imports as the zoo's ``runtests.sh --isort`` wants them (in the zoo,
    ``kd_components`` sorts with the third-party imports); the identity when isort is absent and not ``required``.
    ``zoo_root`` stands for the zoo's checkout (isort's first party is what lies directly in it: not ``kd_components``,
    which sits inside a bundle folder).

    Raises:
        InputError: ``required`` (the pull-request form, ``--weights-url``) and isort is not installed.
    """
    try:
        import isort
    except ImportError:
        if required:
            raise InputError(
                "--weights-url writes the model zoo's pull-request form, whose imports must be sorted as the zoo's "
                "isort sorts them: pip install -r requirements-dev.txt (isort), then package again."
            ) from None
        return lambda text: text
    config = isort.Config(**ZOO_ISORT, src_paths=(str(zoo_root),))
    return lambda text: isort.code(text, config=config)


def runtime_files(texts: Sequence[str], scripts: Sequence[Path] = ()) -> list[Path]:
    """The ``kd_components`` files a packaged bundle needs: the modules its configs name (``_target_`` and ``$``
    expressions in ``texts``) and its scripts import, with everything they import and their packages' ``__init__``.

    The zoo receives the code its configs run and nothing else: no commands (``tools``), no phantom generator, no
    published split files or schemas.
    """
    import re

    todo = {m for t in texts for m in re.findall(r"kd_components(?:\.\w+)*", t)} | {"kd_components"}
    for script in scripts:
        todo |= imported_modules(script)
    files: set[Path] = set()
    while todo:
        name = todo.pop()
        while name.count(".") and _module_file(name) is None:  # kd_components.training.load_teacher -> the module
            name = name.rsplit(".", 1)[0]
        path = _module_file(name)
        if path is None or path in files:
            continue
        files.add(path)
        todo |= imported_modules(path)
        todo |= {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}  # parent packages run first
    return sorted(files)


def read_config(path: str | os.PathLike) -> dict:
    """The config JSON in ``path``; each bundle stands alone, so there is nothing to resolve from other files.

    Raises:
        InputError: unreadable JSON.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"config '{path}' cannot be read: {str(e).splitlines()[0]}.") from None


def _parse_override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise InputError(f"--override '{text}' is not KEY=VALUE: write e.g. --override init_filters=8.")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def apply_overrides(config: dict, overrides: dict) -> dict:
    """``config`` with each ``id`` of ``overrides`` set through MONAI's ``ConfigParser``, where the id's top level
    is defined in that config (an overlay's ids reach only the configs that use them)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser(config)
    parser.update({k: v for k, v in overrides.items() if k.replace("::", "#").split("#")[0] in config})
    return parser.get()


def verify_bundle_metadata(
    meta_file: str | os.PathLike, schema: str | os.PathLike = SCHEMA_PATH, shown_as: str | os.PathLike | None = None
) -> None:
    """Run ``monai.bundle.verify_metadata`` offline against ``schema``.

    Args:
        meta_file: the ``metadata.json`` to check.
        schema: the JSON schema (default: the one shipped with kd_components).
        shown_as: the file name to print in errors (default ``meta_file``).

    Raises:
        InputError: the metadata does not satisfy the schema (the failing field is named).
    """
    from monai.bundle import verify_metadata

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "schema.json"
        shutil.copyfile(schema, local)
        try:
            verify_metadata(meta_file=str(meta_file), filepath=str(local))
        except ValueError as e:
            reason = " ".join(str(e).split()).split(" Failed validating")[0]
            raise InputError(
                f"metadata '{shown_as or meta_file}' fails the bundle schema ({schema}): {reason}; add or fix that "
                f"field (see the MONAI Bundle specification)."
            ) from None


def _check_torchscript(ts_file: Path, network, in_channels: int) -> float:
    """Largest absolute difference between the TorchScript and the eager output on one random 32^3 input."""
    import torch

    network.eval()
    x = torch.randn(1, in_channels, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    ts = torch.jit.load(str(ts_file), map_location="cpu").eval()
    with torch.no_grad():
        return float((ts(x) - network(x)).abs().max())


def package_bundle(
    bundle: str | os.PathLike,
    output: str | os.PathLike,
    ckpt: str | os.PathLike | None = None,
    name: str | None = None,
    config_files: Sequence[str | os.PathLike] = (),
    overrides: dict | None = None,
    student_modality: str | None = None,
    torchscript: bool = True,
    weights_url: str = "",
    version: str | None = None,
    teacher_name: str | None = None,
) -> Path:
    """Write ``NAME.zip`` of ``bundle`` with trained weights (see the module docstring for the layout).

    Args:
        bundle: the bundle folder (``bundles/teacher`` or ``bundles/student_kd``).
        output: a folder (the zip is ``output/NAME.zip``) or a ``.zip`` file path.
        ckpt: weights to ship; default ``<bundle>/models/model.pt``. A plain state dict, ``{"model": ...}`` or a
            CheckpointSaver file; written into the zip as a plain state dict.
        name: the bundle's name (the zip's top folder, the model's name in MONAI Label); default
            ``brats_kdnet_teacher`` or ``brats_kdnet_student_<modality>``, and in the pull-request form
            (``weights_url``) the zoo's data_modality_task form: ``brats_mri_kd_teacher_segmentation``,
            ``brats_mri_<modality>_kd_segmentation`` (``brats_mri_t1ce_flair_kd_segmentation``).
        config_files: overlays the weights were trained with (e.g. ``configs/unet.json``), merged into every
            packaged config that defines their ids.
        overrides: ``{id: value}`` set the same way (e.g. ``{"init_filters": 8}``).
        student_modality: the student's input modality (student bundles; default: the one recorded beside the
            weights in ``model_settings.json``, else the training config's).
        torchscript: also export ``models/model.ts`` and check it against the eager network.
        weights_url: where the weights will be downloadable, written into ``large_files.yml``; when given, the
            zip leaves the weights out (the zoo's pull-request form) and they go to ``NAME_weights/`` beside it.
        version: bundle version to write into the metadata (default: the metadata's).
        teacher_name: student bundles: the packaged teacher's name; ``teacher_ckpt`` becomes
            ``<bundle_root>/../<teacher_name>/models/model.pt`` unless ``overrides`` set it. Default
            ``brats_kdnet_teacher``; in the pull-request form the zoo's ``brats_mri_segmentation``.

    Raises:
        InputError: missing bundle, config or ``models/model.pt``; weights that do not fit ``network_def``;
            metadata failing the schema; missing required config properties; a TorchScript export that differs
            from the eager network.
    """
    import torch
    from monai.bundle import ConfigParser

    from kd_components.brats import COMBINATION_SEPARATOR
    from kd_components.deploy.weights import SETTINGS_NAME, read_model_settings
    from kd_components.subsets import ALL_SUBSETS, canonical_student_modality, input_channel_names, is_any, subset_name
    from kd_components.training.checkpoints import load_network

    t0 = time.time()
    bundle = Path(bundle)
    configs = bundle / "configs"
    if teacher_name is None:
        teacher_name = ZOO_TEACHER if weights_url else DEFAULT_NAMES["teacher"]
    for required in ("metadata.json", "inference.json"):
        if not (configs / required).is_file():
            raise InputError(f"'{bundle}' is not a bundle folder: configs/{required} is missing.")
    ckpt = Path(ckpt) if ckpt else bundle / "models" / "model.pt"
    if not ckpt.is_file():
        raise InputError(
            f"'{ckpt}' does not exist: train the bundle first (python -m monai.bundle run training --config_file "
            f"{configs / 'train.json'}) or pass --ckpt with the trained weights."
        )
    overrides = dict(overrides or {})
    for overlay in config_files:
        if not Path(overlay).is_file():
            raise InputError(f"--config-file '{overlay}' does not exist.")
        try:
            overrides = {**json.loads(Path(overlay).read_text()), **overrides}
        except json.JSONDecodeError as e:
            raise InputError(f"--config-file '{overlay}' is not valid JSON ({e}).") from None
    flat = {p.name: read_config(p) for p in sorted(configs.glob("*.json")) if p.name != "metadata.json"}
    # what the weights were trained with (training writes it beside model.pt): the window and the voxel size go into
    # the packaged configs, so that the packaged inference slides and resamples as trained without the file
    settings = read_model_settings(ckpt.parent) or {}
    for key in ("roi_size", "pixdim"):
        if settings.get(key):
            overrides.setdefault(key, settings[key])
    is_student = "student_modality" in flat["inference.json"]
    modality = None
    if is_student:
        modality = (
            student_modality
            or overrides.get("student_modality")
            or settings.get("modality")
            or flat.get("train.json", {}).get("student_modality")
            or "t1ce"
        )
        try:
            modality = canonical_student_modality(modality)
        except ValueError as e:
            raise InputError(f"--student-modality: {e}") from None
        trained = settings.get("modality")
        if trained and canonical_student_modality(trained) != modality:
            raise InputError(
                f"--student-modality {modality} but the weights --ckpt '{ckpt}' were trained on {trained} "
                f"({SETTINGS_NAME} beside them): leave --student-modality out, or give the weights of a {modality} "
                "student."
            )
        overrides["student_modality"] = modality
        overrides.setdefault("teacher_ckpt", f"$@bundle_root + '/../{teacher_name}/models/model.pt'")
    elif student_modality:
        raise InputError(f"--student-modality is for student bundles; '{bundle}' has no student_modality setting.")
    for fname, cfg in flat.items():
        flat[fname] = cfg = apply_overrides(cfg, overrides)
        if "bundle_root" in cfg:
            cfg["bundle_root"] = "."
    kind = bundle.resolve().name
    zoo_name = not name and bool(weights_url) and kind in ZOO_NAMES  # the modality is inside the zoo's form
    if zoo_name:
        name = ZOO_NAMES[kind].format(modality=(modality or "").replace(COMBINATION_SEPARATOR, "_"))
    name = name or DEFAULT_NAMES.get(kind, kind)
    if is_student and not zoo_name and not student_modality_in(name):
        name = f"{name}_{modality.replace(COMBINATION_SEPARATOR, '_')}"  # a combination: ..._t1ce_flair
    metadata = json.loads((configs / "metadata.json").read_text())
    if version:
        metadata["version"] = version
        metadata.setdefault("changelog", {})[version] = metadata.get("changelog", {}).get(version, "packaged")
    if is_student:
        fmt = metadata["network_data_format"]["inputs"]["image"]
        channels = input_channel_names(modality)
        fmt["channel_def"] = {str(i): c for i, c in enumerate(channels)}
        fmt["num_channels"] = len(channels)
        metadata["student_modality"] = modality
        if is_any(modality):
            # one bundle for every subset: which inputs it takes, said where the zoo's reader looks
            fmt["subsets"] = [subset_name(s) for s in ALL_SUBSETS]
            metadata["name"] = f"{metadata.get('name', name)}, any subset of T1c, T1, T2, FLAIR"
        else:
            metadata["name"] = f"{metadata.get('name', name)}, {'+'.join(channels)}"

    output = Path(output)
    target = output if output.suffix == ".zip" else output / f"{name}.zip"
    with tempfile.TemporaryDirectory(prefix="kd_package_") as tmp:
        stage = Path(tmp) / name
        (stage / "configs").mkdir(parents=True)
        (stage / "models").mkdir()
        for fname, cfg in flat.items():
            (stage / "configs" / fname).write_text(json.dumps(cfg, indent=4) + "\n")
        (stage / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=4) + "\n")
        for extra in ("logging.conf",):
            if (configs / extra).is_file():
                shutil.copyfile(configs / extra, stage / "configs" / extra)
        for folder in ("docs", "scripts"):
            if (bundle / folder).is_dir():
                shutil.copytree(bundle / folder, stage / folder, ignore=shutil.ignore_patterns("__pycache__"))
        readme = stage / "docs" / "README.md"
        if readme.is_file():
            readme.write_text(zoo_docs(readme.read_text(), bundle.resolve().name, teacher_name))
        if (bundle / "LICENSE").is_file():
            shutil.copyfile(bundle / "LICENSE", stage / "LICENSE")
        texts = [p.read_text() for p in (stage / "configs").glob("*.json")]
        sort_imports = _zoo_import_sorter(required=bool(weights_url), zoo_root=stage.parent)
        for path in runtime_files(texts, sorted((stage / "scripts").glob("*.py"))):
            dest = stage / "kd_components" / path.relative_to(RUNTIME_SOURCE)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(sort_imports(path.read_text()))
        if settings:
            shutil.copyfile(ckpt.parent / SETTINGS_NAME, stage / "models" / SETTINGS_NAME)

        # the weights must load strictly into the packaged network definition
        inference_cfg = stage / "configs" / "inference.json"
        parser = ConfigParser()
        parser.read_config(str(inference_cfg))
        parser["bundle_root"] = str(stage)
        network = parser.get_parsed_content("network_def", instantiate=True)
        try:
            network = load_network(network, ckpt, what="checkpoint")
        except InputError as e:
            raise InputError(
                f"{e} Package with the settings it was trained with: --config-file OVERLAY (e.g. "
                f"bundles/teacher/configs/unet.json) or --override init_filters=N."
            ) from None
        torch.save(network.state_dict(), stage / "models" / "model.pt")

        verify_bundle_metadata(stage / "configs" / "metadata.json", shown_as=configs / "metadata.json")
        missing = _missing_properties(inference_cfg, "infer")
        if "train.json" in flat:
            missing += _missing_properties(stage / "configs" / "train.json", "train")
        if missing:
            raise InputError(f"'{configs}' lacks the bundle properties MONAI requires: {', '.join(missing)}.")

        large = [("models/model.pt", stage / "models" / "model.pt")]
        if torchscript:
            ts_file = _export_torchscript(stage, network)
            large.append(("models/model.ts", ts_file))
        lines = [
            "# Weights published at url (the pull-request form: not in the zip); `python -m monai.bundle download`"
            " fetches them."
            if weights_url
            else "# Weights shipped in the bundle's models/; their md5 is checked on load.",
            "",
        ]
        lines.append("large_files:")
        for rel, path in large:
            lines += [
                f'  - path: "{rel}"',
                f'    url: "{weights_url.rstrip("/") + "/" + Path(rel).name if weights_url else ""}"',
                f'    hash_val: "{file_md5(path)}"',
                '    hash_type: "md5"',
            ]
        (stage / "large_files.yml").write_text("\n".join(lines) + "\n")

        excluded = {path for _, path in large} if weights_url else set()
        if excluded:
            upload = target.parent / f"{name}_weights"
            upload.mkdir(parents=True, exist_ok=True)
            for path in excluded:
                shutil.copyfile(path, upload / path.name)
        with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for f in sorted(stage.rglob("*")):
                if f.is_file() and f not in excluded:
                    z.write(f, f.relative_to(stage.parent).as_posix())
    print(f"wrote {target} ({name}; {'student ' + modality if is_student else 'teacher'}) in {time.time() - t0:.1f} s")
    if weights_url:
        print(f"zoo form: upload the files of {target.parent / (name + '_weights')} to {weights_url.rstrip('/')}/")
    return target


def _missing_properties(config_file: Path, workflow_type: str) -> list[str]:
    """Required ids of MONAI's bundle properties (``monai.bundle.properties``) absent from ``config_file``."""
    from monai.bundle import ConfigParser
    from monai.bundle.properties import InferProperties, MetaProperties, TrainProperties
    from monai.utils import BundleProperty, BundlePropertyConfig

    props = {**(TrainProperties if workflow_type == "train" else InferProperties)}
    props = {k: v for k, v in props.items() if k not in MetaProperties}
    parser = ConfigParser()
    parser.read_config(str(config_file))
    return [
        f"{config_file.name}:{p[BundlePropertyConfig.ID]}"
        for p in props.values()
        if p.get(BundleProperty.REQUIRED, False) and p[BundlePropertyConfig.ID] not in parser
    ]


def student_modality_in(name: str) -> bool:
    """Whether a bundle name already ends with a modality (``..._t2``)."""
    from kd_components.brats import MODALITY_ALIASES

    return name.rsplit("_", 1)[-1].lower() in MODALITY_ALIASES


def _export_torchscript(stage: Path, network) -> Path:
    """``monai.bundle ckpt_export`` of ``network_def`` into ``models/model.ts``, checked against ``network``."""
    from monai.bundle import ckpt_export

    ts_file = stage / "models" / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(ts_file),
        ckpt_file=str(stage / "models" / "model.pt"),
        meta_file=str(stage / "configs" / "metadata.json"),
        config_file=str(stage / "configs" / "inference.json"),
        bundle_root=str(stage),
    )
    in_channels = json.loads((stage / "configs" / "metadata.json").read_text())["network_data_format"]["inputs"][
        "image"
    ]["num_channels"]
    diff = _check_torchscript(ts_file, network, int(in_channels))
    if diff > 1e-4:
        raise InputError(f"TorchScript export '{ts_file.name}' differs from the eager network by {diff:.2e}.")
    return ts_file


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kd_components.tools.package", description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True, help="bundle folder, e.g. bundles/teacher or bundles/student_kd")
    p.add_argument("--output", required=True, help="folder for NAME.zip, or a .zip path")
    p.add_argument("--ckpt", help="weights to ship (default <bundle>/models/model.pt)")
    p.add_argument("--name", help="bundle name: the zip's top folder and the model's name in MONAI Label")
    p.add_argument(
        "--config-file",
        action="append",
        default=[],
        help="overlay the weights were trained with (repeatable), e.g. bundles/teacher/configs/unet.json",
    )
    p.add_argument("--override", action="append", default=[], help="ID=VALUE set in the packaged configs")
    p.add_argument("--student-modality", help="modality the student was trained on (student bundles)")
    p.add_argument("--no-torchscript", action="store_true", help="skip the models/model.ts export")
    p.add_argument(
        "--weights-url",
        default="",
        help="URL prefix where the weights will be published: the zip leaves them out (model-zoo pull-request form)",
    )
    p.add_argument("--version", help="bundle version to record in metadata.json")
    p.add_argument(
        "--teacher-name",
        default=None,
        help=f"student bundles: the packaged teacher beside it, whose models/model.pt distils the student (default "
        f"{DEFAULT_NAMES['teacher']}; with --weights-url the zoo's {ZOO_TEACHER})",
    )
    return p


@command
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    package_bundle(
        args.bundle,
        args.output,
        ckpt=args.ckpt,
        name=args.name,
        config_files=args.config_file,
        overrides=dict(_parse_override(o) for o in args.override),
        student_modality=args.student_modality,
        torchscript=not args.no_torchscript,
        weights_url=args.weights_url,
        version=args.version,
        teacher_name=args.teacher_name,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
