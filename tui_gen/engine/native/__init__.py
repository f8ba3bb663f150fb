"""C kernels built on the user's machine (see build.py) and the layers that use them."""
