with

customers as (

    select * from {{ ref('stg_shop_db__customers') }}

),

orders as (

    select * from {{ ref('stg_shop_files__orders') }}

),

payments as (

    select * from {{ ref('stg_shop_api__payments') }}

),

-- A cancelled order never counts as the customer buying something.
non_cancelled_orders as (

    select * from orders
    where status != 'cancelled'

),

order_activity_per_customer as (

    select
        customer_id,
        count(*) as orders_count,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at

    from non_cancelled_orders
    group by customer_id

),

-- Revenue is money kept: refunded payments are excluded, whatever the order's status.
paid_payments as (

    select * from payments
    where status = 'paid'

),

revenue_per_customer as (

    select
        orders.customer_id,
        sum(paid_payments.amount) as lifetime_revenue

    from paid_payments
    inner join orders
        on paid_payments.order_id = orders.order_id
    group by orders.customer_id

),

customers_with_activity as (

    select
        customers.customer_id,
        customers.customer_name as name,
        customers.email,
        customers.country,
        coalesce(order_activity_per_customer.orders_count, 0) as orders_count,
        cast(coalesce(revenue_per_customer.lifetime_revenue, 0) as numeric(12, 2)) as lifetime_revenue,
        order_activity_per_customer.first_order_at,
        order_activity_per_customer.last_order_at

    from customers
    left join order_activity_per_customer
        on customers.customer_id = order_activity_per_customer.customer_id
    left join revenue_per_customer
        on customers.customer_id = revenue_per_customer.customer_id

)

select * from customers_with_activity
