"""memory_report: the step-memory table and the memory-against-patch figure."""

from blockrecon.memory_report import MIB, PatchCurve, format_table, plot_patch_memory, step_curves

RESULT = {
    "problem": {"shape": [16, 16, 16], "coils": 2, "unrolls": 2},
    "data_bytes": {"kspace": 3 * MIB},
    "rows": [
        {"patch": 8, "estimate_bytes": 2 * MIB, "patch_activation_bytes": MIB},
        {"patch": 12, "estimate_bytes": 4 * MIB, "patch_activation_bytes": 2 * MIB},
    ],
    "full": {"patch": None, "estimate_bytes": 16 * MIB},
}


def test_table_lists_each_patch_and_full_with_the_data_apart():
    lines = format_table(RESULT).splitlines()
    assert "estimate MiB" in lines[0] and "patch MiB" in lines[0] and "RSS" not in lines[0]
    assert lines[2].split()[:3] == ["8", "2.0", "1.0"]
    assert lines[4].split()[:3] == ["full", "16.0", "-"]
    assert lines[-1].endswith("3.0 MiB, not included above")


def test_curves_per_measure_and_full_level_only_where_measured():
    estimate, patch = step_curves(RESULT)
    assert estimate.mib == [2.0, 4.0] and estimate.full_mib == 16.0
    assert patch.full_mib is None and patch.label == "block-wise one patch fwd+bwd (meta)"


def test_plot_is_a_png(tmp_path):
    path = tmp_path / "m.png"
    plot_patch_memory(
        [PatchCurve("32^3 block-wise", [8, 16], [1.0, 3.0], "32^3 full", 9.0)],
        path,
        "saved bytes (MiB)",
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]
