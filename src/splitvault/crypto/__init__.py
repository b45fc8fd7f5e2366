"""Pure cryptographic building blocks: no I/O, no imports from the rest of splitvault.

This is splitvault's hazmat layer. Applications use ``splitvault.Device`` and
``splitvault.ShareServer``; nothing here is needed to embed the vault.
"""
