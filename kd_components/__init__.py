"""kd_components: multi-modal to mono-modal knowledge distillation (KD-Net) for BraTS, as MONAI Bundle parts.

The package has four wings; imports point only from tools to training to deploy to the library, never back.

The library (no Ignite engines, raises ``ValueError``):

- ``brats``: the BraTS vocabulary (modalities, channel order, label conventions, regions, file names).
- ``subsets``: the one student for every subset of the sequences (``--student_modality any``): its 8-channel input
  (``presence_input``), ``ModalityDropout``, the 15 subsets, each validation case's fixed subset.
- ``losses``: ``DistillationLoss`` and its terms (``SigmoidKLDivLoss``, ``RegionClassKLDivLoss``,
  ``FeatureDistillationLoss``).
- ``terms``: distillation terms that plug into ``DistillationLoss`` by config (``kd_terms``), one per file:
  ``terms.base`` (``DistillationTerm``: its weight, name and the layers it reads), ``terms.channel_wise``
  (``ChannelWiseDistillation``), ``terms.features`` (``FeatureMatching`` at several layers), ``terms.prototypes``
  (``PrototypeDistillation``, ProtoKD), ``terms.affinity`` (``PairwiseAffinity``).
- ``networks``: ``FeatureHook``, the student's ``FeatureAdapter``, ``main_output``.
- ``transforms``: BraTS labels <-> regions (``BratsLabelToRegionsd``, ``RegionsToBratsLabeld``), the resolution
  setting (``ResampleToPixdimd``), the ``any`` student's input from the images a case has (``PresenceInputd``).
- ``evaluation``: Dice / HD95 per case and region under the BraTS 2021 or 2023 rules, ``score_files``.
- ``data``: ``data.datalist`` (find cases, write and load checked datalists), ``data.validate`` (voxel checks,
  validation memory), ``data.phantom`` (the synthetic BraTS-like phantom), ``data.stack`` (4-channel NIfTI),
  ``data.msd`` (MSD Task01_BrainTumour converted to the BraTS layout);
  ``python -m kd_components.data``.
- ``resources``: where the bundles are (the checkout's ``bundles/``, the copy installed inside the package, or
  ``KD_BUNDLES``).
- ``options`` (``as_bool``), ``files`` (atomic writes, md5), ``errors`` (``InputError``, the one-line error of the
  config and command-line boundary, and ``command``, the commands' wrapper).

``deploy``, using trained weights (imports only the library; ``training`` and ``tools`` import it):

- ``deploy.inference``: what the inference configs segment (both BraTS layouts) and the checks every scan passes
  before a label map is written.
- ``deploy.weights``: ``model_settings.json`` beside ``model.pt`` (training window, channels, modality), read by
  inference and evaluation so that the weights run as they were trained.

``training``, what the bundle configs reference:

- ``training.trainer``: ``DistillationTrainer`` (teacher and student in one iteration) and ``loss_terms``.
- ``training.teacher``: ``load_teacher`` (load, check, freeze), ``teacher_weights`` (a bundle folder as teacher).
- ``training.metrics``: ``RegionMetricsWriter``, the evaluator handler writing per-case tables.
- ``training.batch``: ``SelectChannelsBatch`` (the student's channels for its evaluator), ``SubsetInputBatch`` (the
  ``any`` student's input from one subset).
- ``training.data``: ``CheckedThreadDataLoader`` (a case that cannot be loaded stops the run in one line) and
  ``cached_dataset``, the fast pipeline's cache (memory within a budget, else disk).
- ``training.checkpoints``: reading weights safely, the checkpoint to resume from.
- ``training.saver``: ``AtomicCheckpointSaver``. ``training.resume``: ``ResumeFromCheckpoint``, ``BestMetricState``.
- ``training.quality``: ``ValidationRecord`` (``validation.json`` beside the checkpoints), ``teacher_quality_gate``,
  ``margin_channel_weights`` (KD off where the teacher is not better).
- ``training.stop``: ``StopOnBadInput`` (bad input ends a run at once: no final checkpoint, no traceback).
- ``training.progress``: ``EpochProgressBar``. ``training.distributed``: torchrun helpers.
- ``training.runinfo``: ``record_run``. ``training.settings``: the one-line checks of a bundle's settings.

``tools``, commands (``python -m kd_components.tools.NAME``): ``tools.demo``, ``tools.bench``, ``tools.package``,
``tools.cache`` (teacher logits), ``tools.report``, ``tools.ablation`` (distillation settings x modalities x
seeds, scored on validation), ``tools.curves`` (learning curves of a study), ``tools.score`` (two label
maps), ``tools.configs`` (the student's configs generated from the teacher's plus overlays; ``--check``). Every
command's ``main`` goes through ``errors.command``, the one wrapper that turns an ``InputError`` into its line on
stderr and exit status 1. ``tools.stages``: the stage engine (run sizes, stages as bundle command lines) the demo
and the ablation share.
"""

from __future__ import annotations

import importlib

from kd_components.errors import InputError

__version__ = "0.1.0"
__all__ = ["InputError", "__version__"]

#: modules reachable as attributes (``kd_components.data.load_datalist`` in a bundle's ``$`` expression after
#: ``$import kd_components``), imported on first use so that ``import kd_components`` stays light.
_MODULES = (
    "brats",
    "data",
    "deploy",
    "errors",
    "evaluation",
    "files",
    "losses",
    "networks",
    "options",
    "subsets",
    "terms",
    "training",
    "transforms",
)


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f"kd_components.{name}")
    raise AttributeError(f"module 'kd_components' has no attribute '{name}'")
