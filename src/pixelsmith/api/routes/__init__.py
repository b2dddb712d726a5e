"""Thin routes: each decodes its transport, calls one service entry and answers."""
