with

source as (

    select * from {{ source('shop_files', 'orders') }}

),

renamed as (

    select

        ----------  ids
        order_id,
        customer_id,
        product_id,

        ---------- text
        status,

        ---------- numerics
        quantity,
        cast(unit_price as numeric(12, 2)) as unit_price,

        ---------- timestamps
        ordered_at,
        updated_at,

        ---------- lineage
        _file_name as source_file_name,
        _dlt_load_id as dlt_load_id

    from source

)

select * from renamed
