"""Published methods that bridge CLIP and a GAN, rebuilt to compare with CLIP2GAN (10_comparisons.ipynb).

Each module implements one published mechanism on this package's frozen CLIP and StyleGAN2, with a
test against its paper's formula on a tiny case; `clip2gan.evaluation.comparisons` scores them all
with one protocol beside CLIP2GAN's two methods (the paper's rule and the project's bridge).

    clip2latent   a diffusion prior over G's w conditioned on a noise-augmented CLIP embedding,
                  trained on G's own samples (Pinkney & Li, BMVC 2022)
    styleclip     latent optimisation of a w+ code with the CLIP loss (Patashnik et al., ICCV 2021)
    deltaedit     text-free edits: a network mapping image-feature differences to latent differences
                  (Lyu et al., CVPR 2023)
    rerank        keep the best of n samples by CLIP score (as clip2latent does), for any sampler

The gap-bridging baselines that only change M's input features (mean shift, C3, LAFITE) live in
`clip2gan.modality_gap` and are training options of `clip2gan.train`.

Every text → image method offers `generate(captions, n_per_prompt=1, seed=0) -> [len(captions) * n, 3, R, R]`
in [-1, 1] (prompt-major order, as `CLIP2GAN.generate`); every editing method
`edit_pairs(images, texts, beta=1.0, seed=0) -> (before, after)`, both `[N, 3, R, R]`: the method's own
reconstruction of each image and its edit.
"""
