"""Models from elsewhere, mapped onto this project's GPT: Hugging Face GPT-2-family folders
(and names in the local Hugging Face cache) and nanoGPT checkpoints, plus export back to
Hugging Face's format. Nothing here reaches the network or runs code from a file it reads.
"""
