"""The device string is checked once, the same way for configs, node parameters and the CLI."""

from mowm_ros import cli
from mowm_ros.device import check_device
from mowm_ros.world_model import resolve_device, WorldModelConfig
import pytest
import torch


@pytest.mark.parametrize('name', ['auto', 'cpu', 'cuda', 'cuda:0', 'cuda:12'])
def test_every_form_of_device_name_is_accepted_by_the_config(name):
    assert check_device(name) == name
    assert WorldModelConfig(device=name).device == name


@pytest.mark.parametrize('name', ['tpu', 'cuda:', 'cuda:x', 'CPU', '', None])
def test_other_names_are_refused_naming_what_is_accepted(name):
    with pytest.raises(ValueError, match=r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        WorldModelConfig(device=name)


def test_the_cli_refuses_a_bad_device_with_the_same_words(capsys):
    with pytest.raises(SystemExit):
        cli.main(['bench', 'model', '--device', 'cuda:x'])
    assert "device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'cuda:x'" in \
        capsys.readouterr().err


def test_a_cuda_device_this_machine_lacks_is_refused():
    missing = f'cuda:{torch.cuda.device_count()}'
    with pytest.raises(ValueError, match=f'device "{missing}" requested but'):
        resolve_device(missing)
    assert resolve_device('cpu') == torch.device('cpu')
