"""Read a page's elements and attributes (from the HTML written, or the DOM Chromium rendered)."""

from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    """Links, ids and data attributes of one page."""

    def __init__(self, text: str):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.elements: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        for name in ("href", "src"):
            if attributes.get(name) is not None:
                self.links.append(attributes[name])
        if attributes.get("id"):
            self.ids.add(attributes["id"])

    def having(self, **wanted) -> list[dict]:
        return [attrs for _, attrs in self.elements
                if all(attrs.get(name.rstrip("_").replace("_", "-")) == value for name, value in wanted.items())]

    def svg_boxes(self) -> set[str]:
        """data-table of every table box of the lineage diagram."""
        return {attrs["data-table"] for tag, attrs in self.elements
                if tag == "g" and (attrs.get("class") or "").startswith("table")}

    def row_classes(self) -> dict[str, str]:
        """The class of each table row, by the data-column of the <code> in its first cell."""
        classes, current = {}, ""
        for tag, attrs in self.elements:
            if tag == "tr":
                current = attrs.get("class") or ""
            elif tag == "code" and "data-column" in attrs:
                classes[attrs["data-column"]] = current
        return classes
