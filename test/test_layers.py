"""
The package's layering, read from its source.

No module imports a layer above its own, and imports sit at the top of modules except lazy
ones that say why in a comment.

Layers, lowest first (a module may import its own layer and those below):
geometry, render, image_codec, compressed_codec, atomic, extrinsics, device < data < model, memory
< world_model.py < planning < evaluation, benchmarks, viz < nodes < tools, cli (the ``mowm``
command, which dispatches to every layer).
"""

import ast

from lint_paths import REPO_ROOT

PACKAGE = REPO_ROOT / 'mowm_ros'
LAYERS = [
    {'geometry', 'render', 'image_codec', 'compressed_codec', 'atomic', 'extrinsics', 'device',
     'checkpoints'},
    {'data'},
    {'model', 'memory'},
    {'world_model'},
    {'planning'},
    {'evaluation', 'benchmarks', 'viz'},
    {'nodes'},
    {'tools', 'cli'},
]


def layer_of(module):
    """Return the layer index of a dotted mowm_ros module name (None: the package itself)."""
    parts = module.split('.')
    if len(parts) < 2:
        return None
    for index, names in enumerate(LAYERS):
        if parts[1] in names:
            return index
    raise AssertionError(f'{module}: not in any layer of test_layers.LAYERS; add it there')


def module_name(path):
    parts = list(path.relative_to(REPO_ROOT).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imported_modules(node):
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level or not node.module:
        raise AssertionError(f'line {node.lineno}: relative import; use mowm_ros.* instead')
    if node.module == 'mowm_ros':   # from mowm_ros import geometry
        return [f'mowm_ros.{alias.name}' for alias in node.names]
    return [node.module]


def function_import_groups(tree):
    """Yield the runs of consecutive import statements inside function bodies."""
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            for field in ('body', 'orelse', 'finalbody'):
                block = getattr(node, field, None)
                group = []
                for statement in block if isinstance(block, list) else ():
                    if isinstance(statement, (ast.Import, ast.ImportFrom)):
                        group.append(statement)
                        continue
                    if group:
                        yield group
                    group = []
                if group:
                    yield group


def sources():
    return [(path, path.read_text()) for path in sorted(PACKAGE.rglob('*.py'))]


def test_no_module_imports_a_layer_above_its_own():
    violations = []
    for path, source in sources():
        own = layer_of(module_name(path))
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for module in imported_modules(node):
                if not module.startswith('mowm_ros.'):
                    continue
                target = layer_of(module)
                if own is not None and target is not None and target > own:
                    violations.append(f'{path.relative_to(REPO_ROOT)}:{node.lineno}: '
                                      f'{module_name(path)} (layer {own}) imports {module} '
                                      f'(layer {target})')
    assert not violations, 'imports of a higher layer:\n' + '\n'.join(violations)


def test_imports_inside_functions_say_why_they_are_lazy():
    unexplained = []
    for path, source in sources():
        lines = source.splitlines()
        seen = set()
        for group in function_import_groups(ast.parse(source)):
            if id(group[0]) in seen:
                continue
            seen.add(id(group[0]))
            above, index = [], group[0].lineno - 2
            while index >= 0 and lines[index].strip().startswith('#'):
                above.append(lines[index])
                index -= 1
            for node in group:
                own = [line.split('#', 1)[1] for line in lines[node.lineno - 1:node.end_lineno]
                       if '#' in line]
                if not any('lazy' in comment for comment in above + own):
                    unexplained.append(f'{path.relative_to(REPO_ROOT)}:{node.lineno}: '
                                       f'{lines[node.lineno - 1].strip()}')
    assert not unexplained, (
        'imports inside functions without a "# lazy: why" comment (move them to the top of '
        'the module, or say why they must wait):\n' + '\n'.join(unexplained))


def test_the_layers_cover_every_module():
    for path, _ in sources():
        layer_of(module_name(path))
