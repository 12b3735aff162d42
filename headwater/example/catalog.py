"""Fixed reference data the simulator draws from: names, countries, the product catalogue."""

from __future__ import annotations

FIRST_NAMES = (
    "Ada", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas",
    "Kira", "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sven", "Tara",
)
LAST_NAMES = (
    "Andersen", "Bakker", "Costa", "Dubois", "Eriksson", "Fischer", "Garcia", "Hansen",
    "Ivanova", "Jansen", "Kowalski", "Lopez", "Moreau", "Novak", "Okafor", "Peters",
    "Rossi", "Schmidt", "Tanaka", "Visser",
)
# ISO 3166-1 alpha-2 codes, so quality checks can assert a two-letter format.
COUNTRIES = ("NL", "DE", "BE", "FR", "GB", "ES", "IT", "SE", "PL", "US")
# Reserved example domains (RFC 2606); an email change moves a customer to another one.
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
PAYMENT_METHODS = ("card", "card", "card", "paypal", "bank_transfer")
# Small orders are the common case.
QUANTITIES = (1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5)

# (name, category, starting price); product_id is the position in this list, from 1.
PRODUCTS = (
    ("Espresso Beans 1kg", "coffee", 24.90),
    ("Filter Coffee 500g", "coffee", 12.50),
    ("Decaf Beans 500g", "coffee", 13.90),
    ("Cold Brew Concentrate", "coffee", 9.80),
    ("Green Tea Tin", "tea", 8.40),
    ("Earl Grey 100 Bags", "tea", 6.90),
    ("Chai Blend", "tea", 7.60),
    ("Herbal Sampler", "tea", 11.20),
    ("Pour-over Dripper", "equipment", 29.00),
    ("Burr Grinder", "equipment", 89.00),
    ("Gooseneck Kettle", "equipment", 54.50),
    ("French Press", "equipment", 34.00),
    ("Milk Frother", "equipment", 19.90),
    ("Ceramic Mug", "accessories", 14.00),
    ("Travel Tumbler", "accessories", 22.00),
    ("Paper Filters x100", "accessories", 4.50),
    ("Cleaning Tablets", "accessories", 9.00),
    ("Almond Biscotti", "snacks", 5.90),
    ("Dark Chocolate Bar", "snacks", 3.80),
    ("Oat Cookies", "snacks", 4.60),
)
