"""discord.py extensions of the gateway bot."""
