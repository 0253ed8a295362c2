"""Writes eval-prompts.json: the seeded evaluation prompts with their ground-truth scenes (read by evaluate.ts),
and fixtures/ (PNG renders of a few scenes with their ground truth, read by evaluator.test.ts).

    python3 tools/train-default-model/make_eval_set.py
"""
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import shapes  # noqa: E402

FIXED = [
    ("a red circle on a blue background", {"background": "blue", "objects": [
        {"colour": "red", "shape": "circle", "size": "medium", "position": "center"}]}),
    ("red circle, blue background", {"background": "blue", "objects": [
        {"colour": "red", "shape": "circle", "size": "medium", "position": "center"}]}),
    ("a small green triangle in the top left corner", {"background": "white", "objects": [
        {"colour": "green", "shape": "triangle", "size": "small", "position": "top left"}]}),
    ("a big yellow star at the bottom on black", {"background": "black", "objects": [
        {"colour": "yellow", "shape": "star", "size": "large", "position": "bottom"}]}),
    ("a red circle and a blue square", {"background": "white", "objects": [
        {"colour": "red", "shape": "circle", "size": "medium", "position": "left"},
        {"colour": "blue", "shape": "square", "size": "medium", "position": "right"}]}),
    ("two grey stars on a pink background", {"background": "pink", "objects": [
        {"colour": "gray", "shape": "star", "size": "medium", "position": "left"},
        {"colour": "gray", "shape": "star", "size": "medium", "position": "right"}]}),
]


def main(n=600, seed=2026):
    rng = random.Random(seed)
    items = [{"prompt": p, "seed": 1000 + i, "scene": s} for i, (p, s) in enumerate(FIXED)]
    while len(items) < n:
        scene = shapes.sample_scene(rng)
        items.append({"prompt": shapes.scene_prompt(scene, rng), "seed": 1000 + len(items), "scene": scene})
    with open(os.path.join(HERE, "eval-prompts.json"), "w") as f:
        json.dump({"seed": seed, "count": len(items), "items": items}, f, indent=1)
        f.write("\n")
    from PIL import Image
    fx = os.path.join(HERE, "fixtures")
    os.makedirs(fx, exist_ok=True)
    r = random.Random(99)
    truth = []
    for i in range(12):
        scene = shapes.sample_scene(r) if i >= len(FIXED) else FIXED[i][1]
        name = f"scene-{i:02d}.png"
        Image.fromarray(shapes.render(scene, r)).save(os.path.join(fx, name))
        truth.append({"file": name, "scene": scene})
    with open(os.path.join(fx, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
        f.write("\n")
    print(f"{len(items)} evaluation prompts, {len(truth)} fixtures")


if __name__ == "__main__":
    main()
