"""Find the fenced code blocks of a Markdown reply (for "copy code block")."""

from __future__ import annotations

from dataclasses import dataclass

from markdown_it import MarkdownIt


@dataclass(frozen=True)
class CodeBlock:
    language: str
    code: str

    def describe(self) -> str:
        """e.g. 'python, 3 lines' (for notices and palette entries)."""
        lines = self.code.count("\n") + (0 if self.code.endswith("\n") else 1)
        lang = self.language or "text"
        return f"{lang}, {lines} line{'s' if lines != 1 else ''}"


def code_blocks(markdown: str) -> list[CodeBlock]:
    """Every fenced or indented code block, in order (an unclosed fence runs to the end)."""
    out = []
    for token in MarkdownIt("commonmark").parse(markdown):
        if token.type in ("fence", "code_block"):
            lang = token.info.split()[0] if token.info.strip() else ""
            out.append(CodeBlock(lang, token.content))
    return out
