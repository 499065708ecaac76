"""The plumbing around the machine learning: files, flags, progress lines, pictures, runs.

Nothing here is needed to understand how a GAN learns; the modules one level up are.
"""
