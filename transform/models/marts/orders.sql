with

orders as (

    select * from {{ ref('stg_shop_files__orders') }}

),

products as (

    select * from {{ ref('stg_shop_db__products') }}

),

payments as (

    select * from {{ ref('stg_shop_api__payments') }}

),

-- Only money actually kept settles an order; refunds do not.
paid_amount_per_order as (

    select
        order_id,
        sum(amount) as paid_amount

    from payments
    where status = 'paid'
    group by order_id

),

orders_with_products as (

    select
        orders.order_id,
        orders.customer_id,
        orders.product_id,
        products.product_name,
        products.category,
        orders.quantity,
        orders.unit_price,
        cast(orders.quantity * orders.unit_price as numeric(12, 2)) as order_total,
        orders.status,
        orders.ordered_at

    from orders
    -- Left join: an order for a product not replicated yet still shows up.
    left join products
        on orders.product_id = products.product_id

),

orders_with_payments as (

    select
        orders_with_products.*,
        cast(coalesce(paid_amount_per_order.paid_amount, 0) as numeric(12, 2)) as paid_amount,
        coalesce(paid_amount_per_order.paid_amount, 0) >= orders_with_products.order_total as is_paid

    from orders_with_products
    left join paid_amount_per_order
        on orders_with_products.order_id = paid_amount_per_order.order_id

)

select * from orders_with_payments
