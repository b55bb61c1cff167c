"""solo-offdiag's Hydra configs, packaged as ``solo_offdiag_configs`` (``pkg://solo_offdiag_configs``).

Primary configs (``--config-name``): ``byol_offdiag`` (CIFAR-10), ``byol_offdiag_cifar100``,
``byol_offdiag_stl10``, ``byol_offdiag_imagenet100``, ``simsiam_offdiag`` (CIFAR-10),
``byol_offdiag_paper`` (the paper's 64-d head preset). Groups: ``augmentations`` (our
``offdiag_*`` pipelines), ``logging`` (csv, wandb, wandb_offline), ``hardware`` (gpu, cpu).
See docs/solo_learn.md.
"""
