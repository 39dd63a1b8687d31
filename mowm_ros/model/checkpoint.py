"""
Checkpoints: safetensors weights + a JSON config; never a pickle.

A checkpoint directory holds ``config.json`` (format version, denoiser and diffusion configs,
training metadata), ``model.safetensors`` (the weights to use: EMA when trained with EMA) and,
for resuming training, ``training.safetensors`` (raw weights and optimizer moments) with
``training.json`` (step, optimizer hyper-parameters, random state seeds).
"""

import json
from pathlib import Path

from mowm_ros.atomic import atomic_write_bytes
from mowm_ros.model.denoiser import Denoiser, DenoiserConfig
from mowm_ros.model.diffusion import DiffusionConfig
from safetensors import SafetensorError
from safetensors.torch import load_file, save
import torch

FORMAT_VERSION = 1
CONFIG_FILE = 'config.json'
WEIGHTS_FILE = 'model.safetensors'
TRAINING_WEIGHTS_FILE = 'training.safetensors'
TRAINING_STATE_FILE = 'training.json'


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or does not match the code; the message says why."""


def default_checkpoint_dir() -> Path:
    """Return the checkpoint shipped inside the package."""
    return Path(__file__).resolve().parent.parent / 'checkpoints' / 'mowm_maze64'


def _atomic_save_tensors(tensors, path, metadata=None):
    atomic_write_bytes(path, save({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                                  metadata=metadata))


def save_checkpoint(directory, model, diffusion_config, weights=None, extra=None) -> None:
    """Write config.json and model.safetensors (``weights`` default to the model's own)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = weights if weights is not None else model.state_dict()
    _atomic_save_tensors(state, directory / WEIGHTS_FILE, metadata={'format': 'mowm_ros'})
    config = {'format_version': FORMAT_VERSION, 'denoiser': model.config.to_dict(),
              'diffusion': diffusion_config.to_dict(), **(extra or {})}
    atomic_write_bytes(directory / CONFIG_FILE,
                       json.dumps(config, indent=2, sort_keys=True).encode())


def read_config(directory) -> dict:
    path = Path(directory) / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f'{path}: checkpoint config not found') from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f'{path}: unreadable checkpoint config: {exc}') from None
    if config.get('format_version') != FORMAT_VERSION:
        raise CheckpointError(f'{path}: format_version {config.get("format_version")!r}, this '
                              f'code reads {FORMAT_VERSION}')
    return config


def _build_config(cls, values, path, section):
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise CheckpointError(f'{path}: {section} has settings this code does not know: '
                              f'{unknown}')
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f'{path}: invalid {section} config: {exc}') from None


def config_differences(expected, found) -> list:
    """Return 'name: file has X, expected Y' for every differing field of two configs."""
    a, b = expected.to_dict(), found.to_dict()
    return [f'{key}: checkpoint has {b.get(key)!r}, expected {a.get(key)!r}'
            for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def load_checkpoint(directory, expected_denoiser=None, device='cpu') -> tuple:
    """
    Load (model, diffusion_config, config dict) from a checkpoint directory.

    With ``expected_denoiser`` (the configuration the caller's code needs), a checkpoint built
    for another configuration fails with the differing fields named.
    """
    directory = Path(directory)
    config = read_config(directory)
    denoiser_config = _build_config(DenoiserConfig, config.get('denoiser', {}),
                                    directory / CONFIG_FILE, 'denoiser')
    diffusion_config = _build_config(DiffusionConfig, config.get('diffusion', {}),
                                     directory / CONFIG_FILE, 'diffusion')
    if expected_denoiser is not None:
        differences = config_differences(expected_denoiser, denoiser_config)
        if differences:
            raise CheckpointError(f'{directory}: checkpoint does not match the configured '
                                  f'model: ' + '; '.join(differences))
    model = Denoiser(denoiser_config)
    weights_path = directory / WEIGHTS_FILE
    try:
        state = load_file(str(weights_path))
    except FileNotFoundError:
        raise CheckpointError(f'{weights_path}: weights not found') from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f'{weights_path}: corrupt weights: {exc}') from None
    load_weights(model, state, weights_path)
    return model.to(device), diffusion_config, config


def load_weights(model, state, source) -> None:
    """Copy ``state`` into ``model``; any missing, unexpected or mis-shaped tensor fails."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mis_shaped = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or mis_shaped:
        details = []
        if missing:
            details.append(f'missing {missing[:4]}{" ..." if len(missing) > 4 else ""}')
        if unexpected:
            details.append(f'unexpected {unexpected[:4]}{" ..." if len(unexpected) > 4 else ""}')
        for key in mis_shaped[:4]:
            details.append(f'{key} has shape {tuple(state[key].shape)}, the model expects '
                           f'{tuple(own[key].shape)}')
        raise CheckpointError(f'{source}: weights do not match the model: ' + '; '.join(details))
    model.load_state_dict(state)


def save_training_state(directory, model, optimizer, step, extra_state=None,
                        extra_tensors=None) -> None:
    """Write what resuming needs: raw weights, optimizer moments, counters, RNG states."""
    directory = Path(directory)
    tensors = {f'model.{k}': v for k, v in model.state_dict().items()}
    tensors.update({f'extra.{k}': v for k, v in (extra_tensors or {}).items()})
    scalars = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in optimizer.param_groups:
        for param in group['params']:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.dim() > 0:
                    tensors[f'optimizer.{names[id(param)]}.{key}'] = value
                else:
                    scalars[f'{names[id(param)]}.{key}'] = float(value)
    _atomic_save_tensors(tensors, directory / TRAINING_WEIGHTS_FILE)
    record = {'step': int(step), 'optimizer_scalars': scalars,
              'param_groups': [{k: v for k, v in g.items() if k != 'params'}
                               for g in optimizer.param_groups], **(extra_state or {})}
    atomic_write_bytes(directory / TRAINING_STATE_FILE,
                       json.dumps(record, indent=2, sort_keys=True).encode())


def load_training_state(directory, model, optimizer) -> dict:
    """
    Restore raw weights and optimizer state written by save_training_state.

    Return the JSON record, with the extra tensors under ``record['extra_tensors']``.
    """
    directory = Path(directory)
    try:
        record = json.loads((directory / TRAINING_STATE_FILE).read_text())
        tensors = load_file(str(directory / TRAINING_WEIGHTS_FILE))
    except FileNotFoundError as exc:
        raise CheckpointError(f'{directory}: no training state to resume from ({exc})') from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f'{directory}: corrupt training state: {exc}') from None
    load_weights(model, {k[len('model.'):]: v for k, v in tensors.items()
                         if k.startswith('model.')}, directory / TRAINING_WEIGHTS_FILE)
    params = dict(model.named_parameters())
    for group, saved in zip(optimizer.param_groups, record['param_groups']):
        group.update({k: v for k, v in saved.items() if k in group})
    for name, param in params.items():
        state = {}
        for key, value in tensors.items():
            prefix = f'optimizer.{name}.'
            if key.startswith(prefix):
                state[key[len(prefix):]] = value.to(param.device)
        for key, value in record['optimizer_scalars'].items():
            if key.startswith(f'{name}.'):
                state[key[len(name) + 1:]] = torch.tensor(value)
        if state:
            optimizer.state[param] = state
    record['extra_tensors'] = {k[len('extra.'):]: v for k, v in tensors.items()
                               if k.startswith('extra.')}
    return record
