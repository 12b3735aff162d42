with

source as (

    select * from {{ source('shop_api', 'payments') }}

),

renamed as (

    select

        ----------  ids
        payment_id,
        order_id,

        ---------- text
        method as payment_method,
        status,

        ---------- numerics
        cast(amount as numeric(12, 2)) as amount,

        ---------- timestamps
        updated_at,

        ---------- lineage
        _dlt_load_id as dlt_load_id

    from source

)

select * from renamed
