#!/usr/bin/env python3
"""An independent reference for vggfeat's localisation arithmetic, written from the papers'
descriptions rather than from the Rust code (src/localise/):

- IoU of boxes [x1, x2) x [y1, y2) in continuous pixel coordinates (VOC's 1-based inclusive
  box xmin..xmax is [xmin - 1, xmax)).
- OverFeat's greedy merging (Sermanet et al. 2014, Sect. 4.3, as the VGG paper applies it):
  repeatedly take the two groups of boxes with the largest IoU (ties: the earliest pair); stop
  when it is below the threshold; a group's box is the plain mean of all its boxes' coordinates
  and its score the sum of their scores; report groups by score, highest first (ties: the group
  whose first box came first).
- ILSVRC's localisation error: a guess is right when its class is a ground-truth object's and
  its IoU with that object's box is above 0.5; top-k error is the share of images none of whose
  first k guesses is right; the ground-truth-class error is the share of (image, class) pairs
  whose predicted box overlaps none of that class's boxes by more than 0.5.

This deliberately uses the naive algorithms (every pair recomputed from the member lists each
round), not the incremental ones of the Rust code.

    python3 scripts/localisation_reference.py OUT.json        # write the cases and answers
    python3 scripts/localisation_reference.py --check FILE    # regenerate and compare

tests/localisation.rs checks the Rust code against the committed
tests/golden/localisation_reference.json; CI runs --check so the file stays this script's output.
"""
import json
import random
import sys

HIT_IOU = 0.5


def area(b):
    return max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)


def iou(a, b):
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def group_box(boxes, members):
    n = len(members)
    return [sum(boxes[m][c] for m in members) / n for c in range(4)]


def greedy_merge(boxes, scores, min_iou):
    groups = [[i] for i in range(len(boxes))]  # member lists, ordered by first member
    while len(groups) > 1:
        best = None
        for a in range(len(groups)):
            ra = group_box(boxes, groups[a])
            for b in range(a + 1, len(groups)):
                v = iou(ra, group_box(boxes, groups[b]))
                if best is None or v > best[0]:
                    best = (v, a, b)
        if best[0] < min_iou:
            break
        _, a, b = best
        groups[a] = groups[a] + groups[b]
        del groups[b]
    out = [
        {"rect": group_box(boxes, g), "score": sum(scores[m] for m in g), "members": len(g), "first": g[0]}
        for g in groups
    ]
    out.sort(key=lambda g: (-g["score"], g["first"]))
    for g in out:
        del g["first"]
    return out


def is_hit(guess, truths):
    cls, box = guess
    return any(c == cls and iou(box, t) > HIT_IOU for c, t in truths)


def top_k_error(images, k):
    missed = sum(1 for guesses, truths in images if not any(is_hit(g, truths) for g in guesses[:k]))
    return missed / len(images)


def gt_class_error(pairs):
    missed = sum(1 for box, truths in pairs if box is None or not any(iou(box, t) > HIT_IOU for t in truths))
    return missed / len(pairs)


def jittered(rng, centre, size, jitter):
    cx = centre[0] + rng.uniform(-jitter, jitter) * size
    cy = centre[1] + rng.uniform(-jitter, jitter) * size
    w = size * rng.uniform(1 - jitter, 1 + jitter)
    h = size * rng.uniform(1 - jitter, 1 + jitter)
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def cases(seed=2026):
    rng = random.Random(seed)
    merge_cases = []
    for _ in range(60):
        objects = [((rng.uniform(0, 400), rng.uniform(0, 300)), rng.uniform(20, 200)) for _ in range(rng.randint(1, 3))]
        n = rng.randint(0, 40)
        boxes = []
        for _ in range(n):
            centre, size = rng.choice(objects)
            boxes.append(jittered(rng, centre, size, rng.choice([0.05, 0.2, 0.5])))
        scores = [rng.uniform(0, 1) for _ in range(n)]
        min_iou = rng.choice([0.3, 0.5, 0.7])
        merge_cases.append({
            "boxes": boxes,
            "scores": scores,
            "min_iou": min_iou,
            "merged": greedy_merge(boxes, scores, min_iou),
        })
    iou_cases = []
    for _ in range(200):
        a = jittered(rng, (rng.uniform(0, 100), rng.uniform(0, 100)), rng.uniform(1, 50), 0.5)
        b = jittered(rng, (a[0] + rng.uniform(-20, 20), a[1] + rng.uniform(-20, 20)), rng.uniform(1, 50), 0.5)
        iou_cases.append({"a": a, "b": b, "iou": iou(a, b)})
    images = []
    for _ in range(300):
        truths = []
        for _ in range(rng.randint(1, 3)):
            truths.append((rng.randrange(5), jittered(rng, (rng.uniform(50, 350), rng.uniform(50, 250)), rng.uniform(30, 150), 0.1)))
        guesses = []
        for _ in range(rng.randint(0, 6)):
            c, t = rng.choice(truths)
            cls = c if rng.random() < 0.6 else rng.randrange(5)
            size = t[2] - t[0]
            guesses.append((cls, jittered(rng, ((t[0] + t[2]) / 2, (t[1] + t[3]) / 2), size, rng.choice([0.1, 0.3, 0.6]))))
        images.append({"guesses": [[c, b] for c, b in guesses], "truths": [[c, b] for c, b in truths]})
    pairs = []
    for img in images:
        classes = sorted({c for c, _ in img["truths"]})
        for c in classes:
            boxes = [b for cc, b in img["truths"] if cc == c]
            mine = [b for cc, b in img["guesses"] if cc == c]
            pairs.append({"box": mine[0] if mine else None, "truths": boxes})
    as_tuples = [([tuple(g) for g in i["guesses"]], [tuple(t) for t in i["truths"]]) for i in images]
    return {
        "seed": seed,
        "iou": iou_cases,
        "merge": merge_cases,
        "images": images,
        "top1_error": top_k_error(as_tuples, 1),
        "top5_error": top_k_error(as_tuples, 5),
        "gt_pairs": pairs,
        "gt_class_error": gt_class_error([(p["box"], p["truths"]) for p in pairs]),
    }


def main(argv):
    if len(argv) == 3 and argv[1] == "--check":
        with open(argv[2]) as f:
            committed = json.load(f)
        fresh = json.loads(json.dumps(cases()))
        if committed != fresh:
            print(f"{argv[2]} is not this script's output; regenerate it", file=sys.stderr)
            return 1
        print(f"{argv[2]}: matches the reference")
        return 0
    if len(argv) == 2:
        with open(argv[1], "w") as f:
            json.dump(cases(), f)
            f.write("\n")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
