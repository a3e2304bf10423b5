"""clip2gan: CLIP2GAN rebuilt step by step (the course starts in notebooks/00_setup.ipynb).

    from clip2gan import CLIP2GAN
    model = CLIP2GAN.from_pretrained("toyfaces")

The package, by layer (one module per concept):

The paper's method
    model          CLIP2GAN: frozen CLIP -> M -> frozen G; mapping checkpoints
    clip_encoder   ClipEncoder over open_clip (differentiable preprocessing, prompts, offline errors)
    mapping        the mapping network M: CLIP feature -> w+
    losses         eq. 4-10 (reconstruction, LPIPS, adversarial + penalty, identity, diversity)
    identity       identity networks for L_id (ArcFace IR-SE50, the toy identity net)
    train          the text-free training loop (python -m clip2gan.train)
    generate       text -> diverse images
    edit           beta editing in w+ or CLIP space (eq. 11-14), layer groups
The project's bridge across the modality gap
    modality_gap   measuring the gap, re-centring, nearest image features, the feature bank; the
                   published bridges' feature transforms (C3's collapse and corrupt, LAFITE's perturbation)
Published methods CLIP2GAN is compared with
    baselines/     clip2latent (diffusion prior), styleclip (latent optimisation), deltaedit, rerank
Worlds
    profiles       one record per world (CLIP, generator, identity net, LPIPS trunk, data, files)
The frozen StyleGAN2
    stylegan2/     ops, networks, unpickle + nvidia (safe pickles), rosinality, io, files
Evaluation
    evaluation/    metrics, inception, attributes, protocol, tables, sweeps, comparisons,
                   comparison_report
The toy world (the offline default profile)
    toy/           faces, nets, clip, stylegan2_recipe, stylegan2_training, stylegan2_eval
Tools
    images         user images in: PIL / NumPy / tensors, modes, bit depths, sizes
    hub            where weights come from; the manifest of shipped weights
    checkpoint     safetensors + JSON checkpoints, atomic writes, optimizer state
    cli            command lines built from config dataclasses
    runtime        devices, seeds, environment report
    colab          Colab: install cells and badges from the one repository URL, the defaults there
    viz, widgets, app, pipeline, bench
"""

__version__ = "0.1.0"
__all__ = ["CLIP2GAN", "__version__"]


def __getattr__(name: str):
    # Lazy: `import clip2gan` stays light (no torch model code runs until CLIP2GAN is asked for).
    if name == "CLIP2GAN":
        from clip2gan.model import CLIP2GAN

        return CLIP2GAN
    raise AttributeError(f"module 'clip2gan' has no attribute {name!r}")
