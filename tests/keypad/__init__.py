"""Tests of the SecureKeypad widget."""
