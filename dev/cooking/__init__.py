"""The bundled demo model: a seeded cooking-conversation corpus, its tokenizer and training.

`python -m dev.cooking.train` rebuilds models/cooking from scratch; `python -m
dev.cooking.evaluate models/cooking` measures it. See models/cooking/README.md.
"""

import os

# Training shares two cores with whatever else runs. OpenMP's default spin-waiting makes each
# of torch's two threads burn its time slice waiting for the other whenever the machine is
# oversubscribed (measured: 1.6x slower per step under load); passive waiting costs nothing
# when the machine is idle. Only takes effect if torch has not been imported yet, and an
# explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
