"""`python -m faceswap_tf.convert`: see faceswap_tf/convert/cli.py."""

from faceswap_tf.convert import cli

if __name__ == "__main__":
    cli.run()
