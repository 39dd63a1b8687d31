"""What a recording lacks, for the import summary: odometry gaps and camera_info changes."""

import numpy as np

MAX_LISTED = 20        # gaps or changes listed one by one; the count covers all


def _seconds(ns):
    return round(int(ns) / 1e9, 3)


def odometry_gaps(odom_stamps, max_gap_ns, image_stamps):
    """
    Return the gaps between consecutive odometry samples longer than ``max_gap_ns``.

    Each is ``{'start_s', 'end_s', 'seconds', 'images'}``, ``images`` counting the image
    stamps strictly inside the gap (those cannot be given a pose).
    """
    odom_stamps = np.asarray(odom_stamps, np.int64)
    image_stamps = np.asarray(image_stamps, np.int64)
    gaps = []
    for i in np.nonzero(np.diff(odom_stamps) > max_gap_ns)[0]:
        start, end = odom_stamps[i], odom_stamps[i + 1]
        inside = int(((image_stamps > start) & (image_stamps < end)).sum())
        gaps.append({'start_s': _seconds(start), 'end_s': _seconds(end),
                     'seconds': _seconds(end - start), 'images': inside})
    return gaps


def _camera(K, size):
    return {'size': [int(size[0]), int(size[1])],
            'fx_fy_cx_cy': [round(float(K[0, 0]), 4), round(float(K[1, 1]), 4),
                            round(float(K[0, 2]), 4), round(float(K[1, 2]), 4)]}


def distinct_cameras(infos):
    """
    Collapse stamped camera_infos to the changes: [(stamp, K, (width, height))] in time order.

    ``infos`` is a list of (stamp, K, size); an info equal to the one before it is dropped.
    """
    kept = []
    for stamp, K, size in sorted(infos, key=lambda item: item[0]):
        if kept and kept[-1][2] == size and np.array_equal(kept[-1][1], K):
            continue
        kept.append((stamp, K, size))
    return kept


def camera_info_changes(cameras):
    """Return the changes between consecutive distinct cameras, as JSON-ready dicts."""
    return [{'at_s': _seconds(stamp), 'from': _camera(*before[1:]), 'to': _camera(K, size)}
            for before, (stamp, K, size) in zip(cameras, cameras[1:])]


def camera_of_images(cameras, image_stamps):
    """Index into ``cameras`` of the camera_info in force at each image stamp (else the first)."""
    starts = np.array([camera[0] for camera in cameras], np.int64)
    return np.maximum(np.searchsorted(starts, np.asarray(image_stamps, np.int64),
                                      side='right') - 1, 0)


def listed(items):
    """Return the first MAX_LISTED items; the caller reports ``len(items)`` beside them."""
    return items[:MAX_LISTED]
