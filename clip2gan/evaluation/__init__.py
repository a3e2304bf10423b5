"""Evaluation of a trained mapping network M (07_editing.ipynb, 08_evaluation.ipynb).

One idea per module, from the generic to the sweep:

* `metrics`: Fréchet distance and FID with any features, LPIPS diversity and distance, CLIP score.
* `inception`: the standard FID feature network (TF Inception, pool3) from a local weights file.
* `attributes`: metrics read by the toy world's attribute classifier, and the toy edit vocabulary.
* `protocol`: the evaluation data, settings and metrics of one M, the targets, standard errors,
  comparisons and verdicts.
* `tables`: the sweep CSV, the paper's tables, the verdicts per claim, the sweep figure.
* `sweeps`: training the ablation variants, evaluating and shipping one M, the command line.

Nothing is imported here: `import clip2gan.evaluation` stays light.
"""
