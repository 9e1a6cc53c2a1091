"""Commands, each ``python -m kd_components.tools.NAME``: ``demo`` (the whole comparison), ``bench`` (speed and
memory), ``package`` (model-zoo / MONAI Label zips), ``cache`` (teacher logits once per case), ``report``."""
