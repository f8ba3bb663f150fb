"""The Markdown widget a reply is drawn with: Textual's, with lists that grow in place.

Textual's MarkdownStream re-parses the last top-level block on every write and replaces it.
For a paragraph that is cheap (its text is updated in place), but a list is removed and mounted
again with all of its items, four widgets each. A recipe streams as one long list, so every
batch of tokens rebuilt and restyled ~60 widgets, and every layout of the screen walks all of
them. Two changes, drawn exactly as Textual's own lists are drawn:

* an item that is one paragraph (nearly all of them) is one widget, `CompactItem`, which draws
  its bullet and wraps its text with a hanging indent, instead of four (row, bullet, column,
  paragraph); items with more inside them (nested lists, several paragraphs, code) keep
  Textual's rows;
* a list updates in place from its re-parsed version: items keep their widgets and get their
  new text, new items are mounted, and only an item whose shape changed is rebuilt.

The last block loses its bottom margin (so the reply's footer line sits right under the text)
through a class set after each update, not a `:last-child` rule: an order-dependent rule makes
Textual restyle every block of the reply, with all of their children, on each mount.

This leans on the block internals of Textual 8's Markdown (`_blocks`, `_content`,
`_update_from_block`); tests/test_reply_markdown.py compares what it draws, whole and streamed,
cell by cell with Textual's own widget, so a change in a Textual release shows up there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import ClassVar

from textual.app import ComposeResult
from textual.await_complete import AwaitComplete
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.css.styles import RulesMap
from textual.selection import Selection
from textual.strip import Strip
from textual.style import Style
from textual.visual import RenderOptions, Visual
from textual.widget import Widget
from textual.widgets import Markdown
from textual.widgets._markdown import (
    MarkdownBlock,
    MarkdownBullet,
    MarkdownBulletList,
    MarkdownList,
    MarkdownListItem,
    MarkdownOrderedList,
    MarkdownParagraph,
)


def _items(blocks: Iterable[MarkdownBlock]) -> list[MarkdownListItem]:
    return [block for block in blocks if isinstance(block, MarkdownListItem)]


def bullet_symbols(list_block: MarkdownList, items: list[MarkdownListItem]) -> list[str]:
    """The bullet of each item, as Textual's list widgets compute them."""
    if not isinstance(list_block, MarkdownOrderedList):
        return [item.bullet for item in items]
    start = 1
    if items:
        with contextlib.suppress(ValueError):
            start = int(items[0].bullet)
    labels = [f"{number}. " for number in range(start, start + len(items))]
    width = max((len(label) for label in labels), default=0)
    return [label.rjust(width + 1) for label in labels]


class HangingIndent(Visual):
    """`body` wrapped to the width left after `prefix`; lines after the first are indented
    by the prefix's width (a list item's text under its own first word, not under the
    bullet)."""

    def __init__(self, prefix: Content, body: Content) -> None:
        self.prefix = prefix
        self.body = body
        self.indent = prefix.cell_length

    def _body_width(self, width: int) -> int:
        return max(1, width - self.indent)

    def get_optimal_width(self, rules: RulesMap, container_width: int) -> int:
        return self.indent + self.body.get_optimal_width(rules, container_width - self.indent)

    def get_minimal_width(self, rules: RulesMap) -> int:
        return self.indent + self.body.get_minimal_width(rules)

    def get_height(self, rules: RulesMap, width: int) -> int:
        return max(1, self.body.get_height(rules, self._body_width(width)))

    def render_strips(
        self, width: int, height: int | None, style: Style, options: RenderOptions
    ) -> list[Strip]:
        if not width:
            return []
        plain = RenderOptions(options.get_style, options.rules, post_style=options.post_style)
        lines = self.body.render_strips(self._body_width(width), None, style, plain)
        if not lines:
            lines = [Strip.blank(self._body_width(width), style.rich_style)]
        first = self.prefix.render_strips(self.indent, 1, style, plain)[0]
        blank = Strip.blank(self.indent, style.rich_style)
        strips = [Strip.join([first if i == 0 else blank, line]) for i, line in enumerate(lines)]
        return strips if height is None else strips[:height]


class CompactItem(MarkdownBlock):
    """A list item that is a single paragraph, as one widget (see the module's doc)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = MarkdownBlock.COMPONENT_CLASSES | {"item--bullet"}
    DEFAULT_CSS = """
    CompactItem {
        width: 1fr;
        height: auto;
        & > .item--bullet { color: $text-primary; }
        &:light > .item--bullet { color: $text-secondary; }
    }
    """

    def __init__(self, markdown: Markdown, item: MarkdownListItem, symbol: str) -> None:
        super().__init__(markdown, item._token, item.source_range)
        self.symbol = symbol
        self._content = item._blocks[0]._content

    def show(self, item: MarkdownListItem, symbol: str) -> None:
        """Show a newer version of the same item (no remount)."""
        self._copy_context(item)
        content = item._blocks[0]._content
        if symbol != self.symbol or not content.is_same(self._content):
            self.symbol = symbol
            self._content = content
            self.refresh(layout=True)

    def render(self) -> HangingIndent:
        return HangingIndent(Content.styled(self.symbol, ".item--bullet"), self._content)

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        """The selected part of the item's text (the selection is not highlighted in it)."""
        return selection.extract(self.symbol + self._content.plain), "\n"


def is_compact(item: MarkdownListItem) -> bool:
    """True for an item that is one paragraph (drawn as a CompactItem)."""
    return len(item._blocks) == 1 and type(item._blocks[0]) is MarkdownParagraph


def _item_row(markdown: Markdown, symbol: str, item: MarkdownListItem) -> Widget:
    """One list row: a CompactItem, or the row Textual's list compose() builds."""
    if is_compact(item):
        return CompactItem(markdown, item, symbol)
    bullet = MarkdownBullet()
    bullet.symbol = symbol
    return Horizontal(bullet, Vertical(*item._blocks))


def _same_shape(row: Widget, item: MarkdownListItem) -> bool:
    """True when a Textual row can show `item` by updating its paragraphs' text."""
    if not isinstance(row, Horizontal) or is_compact(item):
        return False
    column = row.query_children(Vertical).first() if row.children else None
    if column is None:
        return False
    old = list(column.children)
    new = item._blocks
    return len(old) == len(new) and all(
        type(a) is MarkdownParagraph and type(b) is MarkdownParagraph for a, b in zip(old, new)
    )


class _InPlaceList:
    """Mixin for the two list blocks: compact rows, and updates in place."""

    def compose(self) -> ComposeResult:
        me: MarkdownList = self  # type: ignore[assignment]
        items = _items(me._blocks)
        for symbol, item in zip(bullet_symbols(me, items), items):
            yield _item_row(me._markdown, symbol, item)
        me._blocks.clear()

    async def _update_from_block(self, block: MarkdownBlock) -> None:
        me: MarkdownList = self  # type: ignore[assignment]
        if type(block) is not type(me):
            await MarkdownBlock._update_from_block(me, block)
            return
        rows = list(me.children)
        items = _items(block._blocks)
        new_rows: list[Widget] = []
        for index, (symbol, item) in enumerate(zip(bullet_symbols(block, items), items)):
            row = rows[index] if index < len(rows) else None
            if row is None:
                new_rows.append(_item_row(me._markdown, symbol, item))
            elif isinstance(row, CompactItem) and is_compact(item):
                row.show(item, symbol)
            elif _same_shape(row, item):
                row.query_children(MarkdownBullet).first().symbol = symbol
                column = row.query_children(Vertical).first()
                for old, new in zip(column.children, item._blocks):
                    if isinstance(old, MarkdownBlock):
                        if not old._content.is_same(new._content):
                            old.set_content(new._content)
                        old._copy_context(new)
            else:  # the item changed shape: rebuild this row only
                await me.mount(_item_row(me._markdown, symbol, item), after=row)
                await row.remove()
        if len(rows) > len(items):
            await me.remove_children(rows[len(items) :])
        if new_rows:
            await me.mount_all(new_rows)
        me._copy_context(block)
        block._blocks.clear()


class ReplyBulletList(_InPlaceList, MarkdownBulletList):
    """A bullet list that grows in place while a reply streams."""


class ReplyOrderedList(_InPlaceList, MarkdownOrderedList):
    """A numbered list that grows in place while a reply streams."""


class ReplyMarkdown(Markdown):
    """Textual's Markdown widget with lighter lists that update in place (see the module's
    doc)."""

    DEFAULT_CSS = """
    ReplyMarkdown > .-last { margin-bottom: 0; }
    """

    BLOCKS: dict[str, type[MarkdownBlock]] = {  # noqa: RUF012 (as Markdown declares it)
        **Markdown.BLOCKS,
        "bullet_list_open": ReplyBulletList,
        "ordered_list_open": ReplyOrderedList,
    }

    def update(self, markdown: str) -> AwaitComplete:
        return AwaitComplete(self._mark_last_after(super().update(markdown)))

    def append(self, markdown: str) -> AwaitComplete:
        return AwaitComplete(self._mark_last_after(super().append(markdown)))

    async def _mark_last_after(self, job: AwaitComplete) -> None:
        await job
        blocks = [child for child in self.children if isinstance(child, MarkdownBlock)]
        for block in blocks[:-1]:
            if block.has_class("-last"):
                block.remove_class("-last")
        if blocks and not blocks[-1].has_class("-last"):
            blocks[-1].add_class("-last")
