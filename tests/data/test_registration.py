"""The three parsers are found by nerfstudio's plugin discovery and import without cycles."""

import subprocess
import sys

import pytest

from nero_nerfstudio.data.dataparsers import nero_colmap_dataparser, nero_synthetic_dataparser


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)


# base_datamanager first is the path every ns-* command takes: it imports dataparser_configs, which imports the plugins
# while base_datamanager is half-initialised.
@pytest.mark.parametrize(
    "first_import", ["nerfstudio.data.datamanagers.base_datamanager", "nerfstudio.configs.dataparser_configs"]
)
def test_nerfstudio_discovers_the_parsers_without_import_errors(first_import):
    result = run_python(
        f"import {first_import}\n"
        "from nerfstudio.configs.dataparser_configs import all_dataparsers\n"
        "from nerfstudio.plugins.registry_dataparser import discover_dataparsers\n"
        "parsers, _ = discover_dataparsers()\n"
        "print(sorted(name for name in parsers if name.startswith('nero-')))\n"
        "print(type(parsers['nero-custom']).__name__, type(parsers['nero-synthetic']).__name__)\n"
        "assert {'nero-synthetic', 'nero-real', 'nero-custom'} <= set(all_dataparsers), sorted(all_dataparsers)"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "['nero-custom', 'nero-nerfstudio', 'nero-real', 'nero-synthetic']" in result.stdout
    assert "NeroCustomDataParserConfig NeroSyntheticDataParserConfig" in result.stdout


def test_parser_modules_stay_light():
    result = run_python(
        "import sys\n"
        "import nero_nerfstudio.data.dataparsers.nero_synthetic_dataparser\n"
        "import nero_nerfstudio.data.dataparsers.nero_colmap_dataparser\n"
        "heavy = [m for m in ('open3d', 'trimesh', 'bpy', 'nerfstudio.data.datamanagers.base_datamanager',\n"
        "                     'nerfstudio.pipelines.base_pipeline', 'nerfstudio.engine.trainer') if m in sys.modules]\n"
        "print(heavy)"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("[]")


def test_specifications_are_module_attributes():
    assert nero_synthetic_dataparser.nero_synthetic_dataparser.config.split_mode == "validation"
    assert nero_colmap_dataparser.nero_real_dataparser.config.max_resolution == 1024
    assert nero_colmap_dataparser.nero_custom_dataparser.config.dataset_format == "custom"
