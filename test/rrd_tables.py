"""Read a Rerun recording back through rerun's dataframe API (a local catalog server)."""

import socket


def read_rrd(path, index='stamp'):
    """Return the recording at ``path`` as a pandas table: one row per ``index`` value."""
    import rerun as rr
    with rr.server.Server(host='127.0.0.1', datasets={'recording': [str(path)]}) as server:
        client = server.client()            # kept referenced until the query has run
        dataset = client.get_dataset('recording')
        return dataset.reader(index=index).to_pandas()


def column(table, entity, component):
    """Return the non-empty cells of one component of ``entity``, e.g. 'Image:buffer'."""
    name = f'/{entity}:{component}'
    assert name in table.columns, f'{name} is not in the recording: {sorted(table.columns)}'
    return table[name].dropna()


def rows(table, entity, component):
    return len(column(table, entity, component))


def stamps(table, entity, component, index='stamp'):
    """Return the set of ``index`` values (ns) at which ``entity`` has ``component``."""
    cells = column(table, entity, component)
    return set(table.loc[cells.index, index].astype('int64'))


def free_port_pair():
    """Return a free TCP port p with p + 1 also free (the viewer and its data stream)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(('0.0.0.0', 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(('0.0.0.0', port))
                b.bind(('0.0.0.0', port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError('found no two free neighbouring TCP ports')
