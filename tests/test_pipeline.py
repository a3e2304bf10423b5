"""pipeline: clear errors for bad arguments, a real run of notebook 00, and output stripping."""

from __future__ import annotations

import nbformat
import pytest

from clip2gan import pipeline


def test_unknown_profile_params_notebook(tmp_path):
    with pytest.raises(pipeline.PipelineError, match="unknown profile 'mars'"):
        pipeline.run_pipeline("mars", "ci", out=tmp_path)
    with pytest.raises(pipeline.PipelineError, match="unknown parameters 'huge'"):
        pipeline.run_pipeline("toyfaces", "huge", out=tmp_path)
    with pytest.raises(pipeline.PipelineError, match=r"unknown notebook\(s\) \['99'\]"):
        pipeline.run_pipeline("toyfaces", "ci", only="99", out=tmp_path)


def test_params_merge_common_and_per_notebook():
    nb = pipeline.NOTEBOOK_DIR / "00_setup.ipynb"
    values = {"common": {"seed": 3, "not_declared": 1}, "00": {"seed": 4}}
    got = pipeline.params_for(nb, values, "toyfaces", pipeline.Path("/tmp/x"))
    assert got["seed"] == 4 and got["profile"] == "toyfaces" and "not_declared" not in got
    assert got["out_dir"] == "/tmp/x/figures"


def test_runs_notebook_00(tmp_path):
    lines = []
    results = pipeline.run_pipeline("toyfaces", "ci", only="00", out=tmp_path, log=lines.append)
    assert [r.status for r in results] == ["ok"]
    executed = nbformat.read(str(tmp_path / "toyfaces" / "00_setup.ipynb"), as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
    assert any("1 of 1 notebooks ok" in line for line in lines)


def test_failure_names_notebook_and_cell(tmp_path, monkeypatch):
    folder = tmp_path / "nbs"
    folder.mkdir()
    nb = nbformat.read(str(pipeline.NOTEBOOK_DIR / "00_setup.ipynb"), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("raise ValueError('broken on purpose')"))
    nbformat.write(nb, str(folder / "00_setup.ipynb"))
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", folder)
    with pytest.raises(pipeline.PipelineError, match=r"00_setup.ipynb failed at cell .*broken on purpose"):
        pipeline.run_pipeline("toyfaces", "ci", out=tmp_path / "out", log=lambda s: None)


def test_strip_removes_large_outputs(tmp_path):
    path = tmp_path / "00_x.ipynb"
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print('x')")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="y" * 10_000)]
    cell.execution_count = 7
    nb.cells = [cell]
    nbformat.write(nb, str(path))
    assert pipeline.strip_notebook(path)
    out = nbformat.read(str(path), as_version=4).cells[0]
    # the cut output stays, so the count stays: nbval fails on a cell with outputs and no count
    assert out.execution_count == 7 and len(out.outputs[0].text) < 5000
    assert not pipeline.strip_notebook(path)  # idempotent


def test_strip_clears_the_count_of_a_cell_left_without_outputs(tmp_path):
    import base64

    path = tmp_path / "00_x.ipynb"
    nb = nbformat.v4.new_notebook()
    big = base64.b64encode(b"\x89PNG" + b"0" * 200_000).decode()  # over max_image_bytes: removed
    cell = nbformat.v4.new_code_cell("plot()")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": big, "text/plain": "<Figure>"})]
    cell.execution_count = 3
    nb.cells = [cell]
    nbformat.write(nb, str(path))
    assert pipeline.strip_notebook(path)
    out = nbformat.read(str(path), as_version=4).cells[0]
    assert out.outputs == [] and out.execution_count is None


def test_a_notebook_for_other_toy_worlds_is_skipped_and_says_why(tmp_path, monkeypatch):
    folder = tmp_path / "nbs"
    folder.mkdir()
    nb = nbformat.read(str(pipeline.NOTEBOOK_DIR / "00_setup.ipynb"), as_version=4)
    nb.metadata["clip2gan"] = {"toy_worlds": ["toyfaces"]}
    nbformat.write(nb, str(folder / "00_setup.ipynb"))
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", folder)
    assert pipeline.notebook_toy_worlds(folder / "00_setup.ipynb") == ["toyfaces"]
    lines = []
    results = pipeline.run_pipeline("toypets", "ci", out=tmp_path / "out", log=lines.append)
    assert [(r.status, r.detail) for r in results] == [("skipped", "teaches toyfaces only")]
    assert any("0 of 0 notebooks ok" in line and "1 skipped" in line for line in lines)
    nb.metadata["clip2gan"] = {"toy_worlds": ["ffhq"]}  # not a toy world: a mistake in the metadata, said as such
    nbformat.write(nb, str(folder / "00_setup.ipynb"))
    with pytest.raises(pipeline.PipelineError, match=r"lists \['ffhq'\] as toy worlds"):
        pipeline.run_pipeline("toypets", "ci", out=tmp_path / "out", log=lambda s: None)
