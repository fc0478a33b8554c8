"""Ethereum plumbing every other part stands on: JSON-RPC clients (``rpc``), the one keccak-256
(``keccak``), RLP (``rlp``), the typed-transaction layout and JSON codec (``tx``) and the fast
signer (``signer``).

Import the module you need: this package imports nothing itself, so ``chain.keccak`` does not load
coincurve and ``chain.rpc`` does not load the signer.
"""
