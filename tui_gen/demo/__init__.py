"""The bundled demo model: a seeded cooking-conversation corpus, its tokenizer and training.

`python -m tui_gen.demo.train` rebuilds models/cooking from scratch; `python -m
tui_gen.demo.evaluate models/cooking` measures it. See models/cooking/README.md.
"""
