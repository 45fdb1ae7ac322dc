#!/usr/bin/env python3
"""A PyTorch replica of the localisation heads (issue 26; results/localisation/README.md), trained
on the trainer's frozen cache instead of through vggfeat: what would make the heads generalise.

    python3 scripts/probe_localisation_heads.py CACHE.safetensors 'run("sgd1e-4", 1e-4, 30)' ...

CACHE is a `frozen-<key>.safetensors` of `vggfeat train --cache-frozen 2 --cache-dir DIR`
(tensors `features` (images x 2 variants, H, W, C) and `targets` (box parameters of each
variant)). 10 % of the training images (both variants, seeded) are held out; the rest train an
fc6-fc7-fc8 head like the trainer's (512-512-4, N(0, 0.01^2) weights, zero biases, fc8's biases
at the mean box, 0.5 x squared error, batches of 32, one variant per image and epoch). Each
`run(name, lr, epochs, opt="sgd"|"adam", wd=5e-4, sqrt=False, drop=0.0)` prints, every 5
epochs, the training loss and the share of training and held-out variants whose box has
IoU <= 0.5 with its target.
"""
import sys, time, torch, numpy as np
from safetensors.torch import load_file
torch.manual_seed(0); torch.set_num_threads(2)
d = load_file(sys.argv[1])
X = d["features"].reshape(len(d["features"]), -1)  # NHWC flattened; order irrelevant for an MLP
T = d["targets"]
n = len(X) // 2  # images: the cache holds 2 variants of each, image-major
# Hold out 10 % of the images (both variants, seeded) to see whether the fit generalises.
g = torch.Generator().manual_seed(1); pi = torch.randperm(n, generator=g)
TRI, HOI = pi[:int(n*.9)], pi[int(n*.9):]
tr = torch.cat([TRI*2, TRI*2+1]); va = torch.cat([HOI*2, HOI*2+1])
def iou_miss(p, t):
    """The share of rows whose box (centre x, centre y, width, height) has IoU <= 0.5 with t."""
    def box(b): return torch.stack([b[:,0]-b[:,2]/2, b[:,1]-b[:,3]/2, b[:,0]+b[:,2]/2, b[:,1]+b[:,3]/2], 1)
    a, b = box(p), box(t)
    iw = (torch.minimum(a[:,2], b[:,2]) - torch.maximum(a[:,0], b[:,0])).clamp(min=0)
    ih = (torch.minimum(a[:,3], b[:,3]) - torch.maximum(a[:,1], b[:,1])).clamp(min=0)
    inter = iw*ih; u = (a[:,2]-a[:,0])*(a[:,3]-a[:,1]) + (b[:,2]-b[:,0])*(b[:,3]-b[:,1]) - inter
    return (inter / u.clamp(min=1e-9) <= 0.5).float().mean().item()
XR = X
def run(name, lr, epochs, init_std=0.01, opt="sgd", scale=1.0, wd=5e-4, sqrt=False, drop=0.0):
    global X
    X = XR.sqrt() / XR.sqrt().std() if sqrt else XR
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 512), torch.nn.ReLU(), torch.nn.Dropout(drop), torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Dropout(drop), torch.nn.Linear(512, 4))
    with torch.no_grad():
        for l in (m[0], m[3], m[6]):
            l.weight.normal_(0, init_std); l.bias.zero_()
        m[6].bias.copy_(T[tr].mean(0))
    o = torch.optim.SGD(m.parameters(), lr, momentum=0.9, weight_decay=wd) if opt == "sgd" else torch.optim.Adam(m.parameters(), lr, weight_decay=wd)
    t0 = time.time(); out = []
    for ep in range(epochs):
        # one variant per image per epoch, like the trainer
        perm = TRI[torch.randperm(len(TRI))]
        v = torch.randint(0, 2, (len(perm),))
        idx = perm*2 + v
        tot = 0
        m.train()
        for i in range(0, len(idx), 32):
            b = idx[i:i+32]
            p = m(X[b]*scale); loss = 0.5*((p - T[b])**2).sum(1).mean()
            o.zero_grad(); loss.backward(); o.step(); tot += loss.item()*len(b)
        if ep % 5 == 4 or ep == epochs-1:
            m.eval()
            with torch.no_grad():
                out.append(f"ep{ep+1} loss {tot/len(idx):.4f} trmiss {iou_miss(m(X[tr]*scale), T[tr]):.3f} hold {iou_miss(m(X[va]*scale), T[va]):.3f}")
    print(name, f"{time.time()-t0:.0f}s", " | ".join(out), flush=True)
for spec in sys.argv[2:]:
    eval(spec)
